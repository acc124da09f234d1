from .softmax_heatmap import SoftmaxHeatmap

__all__ = ['SoftmaxHeatmap']
