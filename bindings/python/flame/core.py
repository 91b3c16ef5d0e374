"""flamepy.core's names: `from flame.core import Session` works as
`from flamepy.core import Session` does, and so does `flame.core.X`. The
same objects as the top level of the package."""
from . import *  # noqa: F401,F403
from . import __all__  # noqa: F401
