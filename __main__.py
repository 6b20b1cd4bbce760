"""hardened-code-server: wires validated settings into the layers and exports the outputs.

No logic lives here: settings validate the stack config (all problems at once, before any
resource exists), components build each layer.
"""

import pulumi

from components.fortigate.edge import FortigateEdge, FortigateEdgeArgs
from components.gateway.stack import GatewayStack, GatewayStackArgs, TunnelConnector
from components.host.vm import DmzHost
from components.identity import EntraAccess, EntraAccessArgs
from components.settings import ConfigError, Problem, PulumiConfigSource, load

settings = load(PulumiConfigSource(pulumi.get_project()))
if settings.team is not None:
    # The settings read and check a team; no layer deploys one yet: refused before any resource exists.
    raise ConfigError([Problem("workspaces", "valid, but this version does not deploy workspaces yet; "
                               "remove workspaces (and vms, workspaceDomain) to deploy the single IDE user")])

identity = EntraAccess("entra", EntraAccessArgs(entra=settings.entra, hostname=settings.hostname,
                                                session_max=settings.gateway.cookie_expire))

machine = None
if settings.vm_provider.creates_vm:
    # Imported only when the program creates the VM (the provider SDKs are large).
    from components.vm.created import CreatedVm

    machine = CreatedVm("machine", settings.hostname, settings.vm_provider, settings.topology)
    pulumi.export("vmMachineId", machine.machine_id)

host = DmzHost("vm", settings.topology, settings.host, machine)

tunnel = None
if settings.cloudflare is not None:
    # Imported only for this edge: pulumi_cloudflare alone takes 2-3 s to import.
    from components.cloudflare.edge import CloudflareEdge, CloudflareEdgeArgs

    edge = CloudflareEdge(
        "cloudflare",
        CloudflareEdgeArgs(
            cloudflare=settings.cloudflare,
            hostname=settings.hostname,
            gateway_port=settings.topology.gateway_port,
            tenant_id=settings.entra.tenant_id,
            group_object_id=identity.group_object_id,
            secret_end_date=settings.entra.secret_end_date,
            secret_rotation=settings.entra.secret_rotation,
        ),
    )
    tunnel = TunnelConnector(image=settings.cloudflare.cloudflared_image, token=edge.tunnel_token)
    pulumi.export("cloudflareTunnelId", edge.tunnel_id)
    pulumi.export("cloudflareAccessAud", edge.access_aud)

gateway = GatewayStack(
    "gateway",
    GatewayStackArgs(
        hostname=settings.hostname,
        topology=settings.topology,
        gateway=settings.gateway,
        connection=host.connection,
        client_id=identity.client_id,
        issuer_url=identity.issuer_url,
        group_object_id=identity.group_object_id,
        client_secret=identity.client_secret,
        after=[host],
        tunnel=tunnel,
    ),
)

if settings.fortigate is not None:
    FortigateEdge("fortigate", FortigateEdgeArgs(fortigate=settings.fortigate, topology=settings.topology))

pulumi.export("url", settings.public_url)
pulumi.export("edge", settings.edge)
pulumi.export("vmProvider", settings.vm_provider.kind)
pulumi.export("entraClientId", identity.client_id)
pulumi.export("entraTenantId", identity.tenant_id)
pulumi.export("entraIssuerUrl", identity.issuer_url)
pulumi.export("entraGroupObjectId", identity.group_object_id)
pulumi.export("signOutUrl", identity.sign_out_url)
pulumi.export("frontProxySite", gateway.front_site)  # None with the Cloudflare edge (no central Caddy)
# The DMZ hop's files for the central Caddy's host (render_caddy.FRONT_HOP_HOME/<hostname>/); None with Cloudflare.
pulumi.export("frontProxyHopCa", gateway.hop_ca_cert)
pulumi.export("frontProxyHopCert", gateway.front_proxy_hop_cert)
pulumi.export("frontProxyHopKey", gateway.front_proxy_hop_key)
pulumi.export("hopCertNotAfter", gateway.hop_not_after)
pulumi.export("cookieSecretUrn", gateway.cookie_secret_urn)
