from .softmax_nll_loss import SoftmaxNLLLoss

__all__ = ['SoftmaxNLLLoss']
