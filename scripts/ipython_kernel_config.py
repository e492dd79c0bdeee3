"""IPython kernel configuration that `make venv` installs as .venv/etc/ipython/ipython_kernel_config.py.

Every kernel started from .venv (by jupyter-book, nbval, nbconvert, Jupyter) reads it. It silences
exactly one log line: ipykernel >= 7 warns "Kernel is running over TCP without encryption" at every
start-up unless the kernel manager hands it CurveZMQ keys, which nbclient's kernel managers (used by
jupyter-book and nbval) do not. The book's kernels listen on 127.0.0.1 only and for the length of
one execution, so the notice tells a reader nothing, and `_config.yml` promises a build log with no
"WARNING" in it. Every other message of the kernel application, warnings included, still shows.
"""

import logging


class _DropUnencryptedTcpNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Kernel is running over TCP without encryption" not in record.getMessage()


# traitlets names an application's logger after its class
logging.getLogger("IPKernelApp").addFilter(_DropUnencryptedTcpNotice())
