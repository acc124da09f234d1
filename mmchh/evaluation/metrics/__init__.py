from .cephalometric_metric import CephalometricMetric, radial_errors_mm
from .uncertainty_metric import UncertaintyMetric

__all__ = ['CephalometricMetric', 'UncertaintyMetric', 'radial_errors_mm']
