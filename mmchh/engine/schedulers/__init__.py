from .fraction_multistep_lr import FractionMultiStepLR, fraction_milestones

__all__ = ['FractionMultiStepLR', 'fraction_milestones']
