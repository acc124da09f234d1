from .checkpoint import (CheckpointError,
                         check_finite_state, checkpoint_state_dict,
                         load_checkpoint_file, weights_fingerprint)
from .compat import (MissingMMCVOpsError, allow_checkpoint_globals,
                     apply_compat, checkpoint_safe_globals,
                     install_mmcv_ops_placeholder, mmcv_ops_available)
from .errors import InputError
from .io import (atomic_write_bytes, atomic_write_text, dumps_json,
                 to_jsonable, write_json)
from .spacing import Spacing, SpacingError, spacing_array

__all__ = [
    'CheckpointError', 'InputError', 'MissingMMCVOpsError',
    'allow_checkpoint_globals', 'apply_compat', 'atomic_write_bytes',
    'atomic_write_text', 'check_finite_state', 'checkpoint_safe_globals',
    'checkpoint_state_dict', 'dumps_json', 'install_mmcv_ops_placeholder',
    'load_checkpoint_file', 'mmcv_ops_available', 'Spacing', 'SpacingError',
    'spacing_array', 'to_jsonable', 'weights_fingerprint', 'write_json'
]
