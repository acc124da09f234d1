"""mmchh: Contour-Hugging Heatmaps (CVPR 2022) as an MMPose extension."""
import os.path as osp

from setuptools import find_packages, setup


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
    python_requires='>=3.8',
    # torch/torchvision, mmcv(-lite) and mmpose are installed by
    # requirements/install.sh: pip cannot express their order, and listing
    # mmpose would pull `chumpy`, which does not build (see docs/install.md).
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    license='Apache-2.0',
    zip_safe=False,
)
