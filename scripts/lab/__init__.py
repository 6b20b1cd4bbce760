"""The lab: this machine standing in for the machines a deployment runs on, for `make demo`, the
benches and the tests alike (all of it test infrastructure, none of it ships).

- `vm`: a debootstrap Debian root (12 or 13) booted with systemd in its own network namespace, reached
  over real SSH; the peer namespace around it and the apt proxy that is its only package source.
- `converge`: the program's host steps, read from its graph under Pulumi's mocks, run on such a root.
- `livepath`: the sign-in chain (front Caddy, gateway Caddy, oauth2-proxy, code-server) on a root.
- `idp`, `fortios`: STAND-INS for Entra ID and a FortiGate's REST API, with what each does not prove.
- `demo`: the whole stack built from the above, left running by `make demo`.
- `example`: the example stack's settings with lab-only secrets, and the DMZ hop's PKI made as the
  program makes it; `tls_server`: the HTTPS server the stand-ins share.
"""
