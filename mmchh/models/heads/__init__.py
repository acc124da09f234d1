from .softmax_heatmap_head import SoftmaxHeatmapHead

__all__ = ['SoftmaxHeatmapHead']
