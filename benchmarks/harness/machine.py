"""What a benchmark's figures were measured on."""
import os
import platform


def machine_info(device):
    """The CPU (model, logical cores), torch and its threads, Python, and
    on a GPU run the GPU's name.

    Returns:
        dict: ``cpu``, ``cores``, ``torch``, ``torch_threads``, ``python``
        and, when ``device`` is ``'cuda'``, ``gpu``.
    """
    import torch

    # imported here: the memory worker of the reference side measures a
    # process without mmchh (and MMPose, which mmchh imports)
    from mmchh.utils.provenance import cpu_model
    info = dict(cpu=cpu_model(fallback=platform.machine()),
                cores=os.cpu_count(), torch=torch.__version__,
                torch_threads=torch.get_num_threads(),
                python=platform.python_version())
    if device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name()
    return info
