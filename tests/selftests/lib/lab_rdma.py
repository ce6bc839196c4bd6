# SPDX-License-Identifier: GPL-2.0
"""Lab helpers for the Python RDMA tests and benchmarks: Soft-RoCE (rxe0 on
eth0), lab devices by name (lab/devices), vfio-pci binding, and perftest
server/client pairs in one guest.

Import with the library directory on sys.path (see ktap.py). BUILD is the
build directory (LAB_BUILD, else $LAB_TOP/build).
"""
import os
import re
import subprocess
import time
from pathlib import Path

TOP = Path(os.environ.get('LAB_TOP', Path(__file__).resolve().parents[3]))
BUILD = Path(os.environ.get('LAB_BUILD', TOP / 'build'))
BIN = BUILD / 'prefix' / 'bin'
DEV = 'rxe0'
NETDEV = 'eth0'
_port = 18600


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def text(out):
    """What a timed-out subprocess had printed (bytes, str or None) as str."""
    if isinstance(out, bytes):
        return out.decode(errors='replace')
    return out or ''


def ensure_rxe():
    if not os.path.exists(f'/sys/class/infiniband/{DEV}'):
        subprocess.run(['ip', 'link', 'set', NETDEV, 'up'], check=True)
        subprocess.run(['rdma', 'link', 'add', DEV, 'type', 'rxe',
                        'netdev', NETDEV], check=True)


def ipv4_gid_index():
    """The GID index of the interface's IPv4 address (RoCE v2)."""
    gids = Path(f'/sys/class/infiniband/{DEV}/ports/1/gids')
    for _ in range(300):      # 60 s: a bound for a hang, not a speed check
        for i in range(16):
            try:
                gid = (gids / str(i)).read_text().strip()
            except OSError:
                break
            if gid.startswith('0000:0000:0000:0000:0000:ffff:'):
                return str(i)
        time.sleep(0.2)
    raise RuntimeError(f'{DEV} has no IPv4 GID')


def ipv4_addr():
    out = sh('ip', '-4', '-o', 'addr', 'show', NETDEV).stdout
    m = re.search(r'inet (\d+\.\d+\.\d+\.\d+)', out)
    if not m:
        raise RuntimeError(f'{NETDEV} has no IPv4 address')
    return m.group(1)


def lab_pci_find(name):
    """The PCI address of a lab device (lab/devices), or None."""
    for line in (TOP / 'lab' / 'devices').read_text().splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == name:
            want, nth = f[1], int(f[2])
            break
    else:
        return None
    seen = 0
    for d in sorted(Path('/sys/bus/pci/devices').iterdir()):
        vd = (d / 'vendor').read_text()[2:6] + ':' + (d / 'device').read_text()[2:6]
        if vd == want:
            seen += 1
            if seen == nth:
                return d.name
    return None


def driver(bdf):
    link = Path(f'/sys/bus/pci/devices/{bdf}/driver')
    return os.path.basename(os.readlink(link)) if link.exists() else ''


def bind_vfio(bdf):
    dev = Path(f'/sys/bus/pci/devices/{bdf}')
    if driver(bdf) == 'vfio-pci':
        return
    if driver(bdf):
        (dev / 'driver' / 'unbind').write_text(bdf)
    (dev / 'driver_override').write_text('vfio-pci')
    Path('/sys/bus/pci/drivers_probe').write_text(bdf)
    if driver(bdf) != 'vfio-pci':
        raise RuntimeError(f'{bdf} did not bind to vfio-pci')


def listening(p):
    want = f':{p:04X} '
    for tbl in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(tbl) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if want in fields[1] + ' ' and fields[3] == '0A':
                    return True
    return False


def perftest(test, server_args, client_args, addr, gid, timeout=240, dev=DEV,
             listened=None, ended=None):
    """Run a server and a client of perftest's @test (ib_write_bw, ...) on
    @dev (rxe0), each with its own arguments; the client connects to @addr
    and both use GID index @gid. @listened, if any, is called once the
    server listens, before the client starts; @ended once both ended.
    (server rc, server out, client rc, client out); a client that was not
    started or timed out has rc None."""
    global _port
    _port += 1
    port = _port
    # -u 17: 0.5 s before a retransmission (perftest's 14 is 67 ms), so
    # that a busy host is no transport error.
    common = [str(BIN / test), '-d', dev, '-x', gid, '-p', str(port), '-F', '-u', '17']
    srv = subprocess.Popen(common + server_args, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not listening(port) and srv.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    if srv.poll() is not None or not listening(port):
        srv.kill()
        out = srv.communicate()[0]
        return srv.returncode, out, None, 'client not started: server not listening'
    if listened:
        listened()
    try:
        cli = subprocess.run(common + client_args + [addr], capture_output=True,
                             text=True, timeout=timeout)
        crc, cout = cli.returncode, cli.stdout + cli.stderr
    except subprocess.TimeoutExpired as e:
        crc, cout = None, f'client timed out after {timeout} s\n{text(e.stdout)}'
    try:
        sout = srv.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        srv.kill()
        sout = srv.communicate()[0] + '\nserver killed after the client ended'
    if ended:
        ended()
    return srv.returncode, sout, crc, cout


def figure(out):
    """The result line under perftest's header (#bytes ...)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith('#bytes'):
            for res in lines[i + 1:]:
                f = res.split()
                if f and f[0].isdigit():
                    return ' '.join(f)
    return None
