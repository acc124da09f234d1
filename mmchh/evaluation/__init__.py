from .functional import *  # noqa: F401,F403
