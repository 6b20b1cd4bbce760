"""A STAND-IN for Microsoft Entra ID (v2.0 endpoints), for tests and the demo only. It is not Entra.

Entra cannot be reached from the test machines, so the sign-in tests point the real oauth2-proxy at
this small OIDC provider, which answers on Entra's paths (`/<tenant>/oauth2/v2.0/authorize`,
`/token`, `/logout`, `/<tenant>/discovery/v2.0/keys`) and signs ID tokens with Entra's issuer form
(`https://login.microsoftonline.com/<tenant>/v2.0`), which oauth2-proxy's `entra-id` provider insists
on. It is at least as strict as Entra where the relying party depends on it (PKCE S256 required and
verified, exact redirect URIs, client secret, single-use short-lived codes, rotating refresh tokens,
a nonce required of oauth2-proxy's client), its claims say only what happened (`groups` as the app
registration's `groupMembershipClaims` and group assignments allow, `amr` = `pwd`: no MFA is
claimed), and it models only what the product's sign-in relies on; see `server.py` for what it
leaves out.
"""
