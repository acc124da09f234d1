"""Memory of this process: its RSS now and at its peak, and what autograd
saves for backward."""
import math
import resource


def status_mb(key):
    """A /proc/self/status size in MB (VmRSS: now; VmHWM: the peak)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024
    return float('nan')


def peak_rss_mb():
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: Linux
    carries ru_maxrss across fork + exec, so a child started from a big
    parent would report the parent's size."""
    peak = status_mb('VmHWM')
    if math.isnan(peak):  # no /proc: ru_maxrss (KB on Linux)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def saved_for_backward(fn, exclude_ptrs):
    """MB of distinct storages autograd saves while ``fn`` runs (parameters
    excluded); returns (fn's output, MB)."""
    import torch
    seen = {}

    def pack(t):
        try:
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr not in exclude_ptrs:
                seen[ptr] = st.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values()) / 2**20
