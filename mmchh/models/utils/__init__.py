from .checkpoint import checkpoint_train, frozen_running_stats

__all__ = ['checkpoint_train', 'frozen_running_stats']
