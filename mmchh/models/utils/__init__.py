from .checkpoint import checkpoint_train, frozen_running_stats
from .upsample_conv import (nearest_upsample_conv3x3,
                            upsample_conv3x3_phase_kernels)

__all__ = [
    'checkpoint_train', 'frozen_running_stats', 'nearest_upsample_conv3x3',
    'upsample_conv3x3_phase_kernels'
]
