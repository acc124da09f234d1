from . import transforms  # noqa: F401  (registration)
from .ceph_meta import (CEPH_LABEL_NAMES, CEPH_LANDMARK_NAMES,
                        ISBI_SPACING_MM, NUM_CEPH_LANDMARKS)
from .cephalometric_dataset import CEPH_METAINFO_FILE, CephalometricDataset

__all__ = [
    'CEPH_LABEL_NAMES', 'CEPH_LANDMARK_NAMES', 'CEPH_METAINFO_FILE',
    'CephalometricDataset', 'ISBI_SPACING_MM', 'NUM_CEPH_LANDMARKS'
]
