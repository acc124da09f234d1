from .cephalometric_metric import CephalometricMetric
from .uncertainty_metric import UncertaintyMetric

__all__ = ['CephalometricMetric', 'UncertaintyMetric']
