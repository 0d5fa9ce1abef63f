# enclave's addition to the Jupyter Kernel Gateway's configuration in a docker_notebook sandbox
# (found through JUPYTER_CONFIG_PATH; the image's own configuration still applies).
#
# Tornado turns Nagle's algorithm back on for a connection once an HTTP response is finished,
# the WebSocket upgrade's 101 included, so a kernel's WebSocket runs with it on. An input's
# messages then go out as small writes in a row (the result, then `idle`), and each write after
# the first waits for the client's ACK of the one before, which the client delays by 40 ms: every
# input took ~48 ms where the kernel answers in ~6. Keeping TCP_NODELAY on every stream removes
# that wait (measured: 6.7 ms from the host, through the published port).
import tornado.iostream as _iostream

_set_nodelay = _iostream.IOStream.set_nodelay


def _always_nodelay(stream, _value):
    _set_nodelay(stream, True)


_iostream.IOStream.set_nodelay = _always_nodelay
