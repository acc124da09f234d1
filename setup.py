"""mmchh: Contour-Hugging Heatmaps (CVPR 2022) as an MMPose extension."""
import os
import os.path as osp

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

#: Installed into site-packages: at interpreter start-up it puts the
#: ``mmcv.ops`` placeholder finder on ``sys.meta_path`` (standard library
#: only, no torch), so ``from mmpose.apis import init_model`` works with
#: mmcv-lite before ``import mmchh`` (see mmchh_mmcv_ops.py, docs/faq.md).
#: The way setuptools ships ``distutils-precedence.pth``.
PTH_NAME = 'mmchh_mmcv_ops.pth'
PTH_CONTENT = ('import sys; exec("try:\\n import mmchh_mmcv_ops\\nexcept '
               'ImportError:\\n pass\\nelse:\\n mmchh_mmcv_ops.install()")\n')


class build_py_with_pth(build_py):
    """``build_py`` that also ships :data:`PTH_NAME` at the top level.

    A regular wheel gets it from the build folder; an editable install
    (PEP 660, ``pip install -e .``), which ships no build folder, gets it
    written straight into the wheel's top level (``install_lib``).
    """

    def run(self):
        super().run()
        targets = [self.build_lib]
        if getattr(self, 'editable_mode', False):
            targets.append(self.get_finalized_command('install').install_lib)
        for folder in targets:
            os.makedirs(folder, exist_ok=True)
            with open(osp.join(folder, PTH_NAME), 'w') as f:
                f.write(PTH_CONTENT)


def read_requirements(name):
    """Reads a requirements file, dropping comments and blank lines."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'requirements', name)
    with open(path) as f:
        lines = [line.split('#', 1)[0].strip() for line in f]
    return [line for line in lines if line]


def read_version():
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'mmchh', 'version.py')
    scope = {}
    with open(path) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmchh',
    version=read_version(),
    description='Uncertainty-aware landmark detection with contour-hugging '
    'heatmaps for MMPose',
    long_description=open('README.md').read()
    if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    py_modules=['mmchh_mmcv_ops'],
    cmdclass={'build_py': build_py_with_pth},
    python_requires='>=3.8',
    # torch/torchvision, mmcv(-lite) and mmpose are installed by
    # requirements/install.sh: pip cannot express their order, and listing
    # mmpose would pull `chumpy`, which does not build (see docs/install.md).
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    license='Apache-2.0',
    zip_safe=False,
)
