"""Imported at interpreter start-up by test subprocesses whose PYTHONPATH begins with
this folder (``tests.conftest.no_network_env``): Python-level network access to
anything but this machine fails, so a test proves that nothing downloads weights or
data. Loopback and Unix sockets (gloo rendezvous, DataLoader workers) still work."""
import socket

_LOCAL_NAMES = ('localhost', '::1', '0.0.0.0', '')
_HOSTNAME = socket.gethostname()  # this machine (torch's launcher looks it up)
_FQDN = _HOSTNAME + '.'
_MESSAGE = 'network access is disabled in this test (mmwsss must not download)'


def _is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    host = '' if host is None else str(host)
    return (host in _LOCAL_NAMES or host.startswith('127.')
            or host in (_HOSTNAME, _FQDN))


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _guard(address):
    if isinstance(address, tuple) and not _is_local(address[0]):
        raise OSError(f'{_MESSAGE}: connect to {address!r}')


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _guard(address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _guard(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host):
        raise socket.gaierror(f'{_MESSAGE}: look-up of {host!r}')
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
