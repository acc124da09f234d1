from .cpu_amp_optim_wrapper import CpuAmpOptimWrapper

__all__ = ['CpuAmpOptimWrapper']
