from .compat import (MissingMMCVOpsError, allow_checkpoint_globals,
                     apply_compat, checkpoint_safe_globals,
                     install_mmcv_ops_placeholder, mmcv_ops_available)

__all__ = [
    'MissingMMCVOpsError', 'allow_checkpoint_globals', 'apply_compat',
    'checkpoint_safe_globals', 'install_mmcv_ops_placeholder',
    'mmcv_ops_available'
]
