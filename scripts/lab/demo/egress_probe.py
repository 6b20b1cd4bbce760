"""Try one outbound flow from inside the VM (run by the VM's own python3); prints what happened:

- connected: the far side answered (TCP handshake, or the UDP echo came back);
- refused: the packet left the VM and the far side refused it (RST or ICMP unreachable);
- blocked: the VM's own netfilter refused to send it (EPERM);
- unreachable: an ICMP error came back (the VM's own netfilter rejects with admin-prohibited);
- unsupported: the address family is not allowed to this process (a unit's RestrictAddressFamilies=);
- timeout: nothing came back (dropped on the way out, or by the far side).

    python3 egress_probe.py tcp|udp ADDRESS PORT      (ADDRESS IPv4 or IPv6)

Standard library only, so it runs under the VM's Debian python3 as any user.
"""

import errno
import socket
import sys

proto, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
family = socket.AF_INET6 if ":" in address else socket.AF_INET
try:
    sock = socket.socket(family, kind)
except OSError as error:
    if error.errno != errno.EAFNOSUPPORT:
        raise
    print("unsupported")
    sys.exit(0)
with sock:
    sock.settimeout(2)
    try:
        sock.connect((address, port))
        if proto == "udp":
            sock.send(b"probe")
            sock.recv(16)
        print("connected")
    except ConnectionRefusedError:
        print("refused")
    except PermissionError:
        print("blocked")
    except (TimeoutError, socket.timeout):
        print("timeout")
    except OSError as error:
        if error.errno not in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise
        print("unreachable")
