from .cephalometric_metric import CephalometricMetric, radial_errors_mm

__all__ = ['CephalometricMetric', 'radial_errors_mm']
