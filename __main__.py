"""hardened-code-server: wires validated settings into the layers and exports the outputs.

No logic lives here: settings validate the stack config (all problems at once, before any
resource exists), components build each layer.
"""

import pulumi

from components.fortigate.edge import FortigateEdge, FortigateEdgeArgs
from components.gateway.stack import GatewayStack, GatewayStackArgs, TunnelConnector
from components.host.vm import DmzHost
from components.identity import EntraAccess, EntraAccessArgs
from components.settings import PulumiConfigSource, load

settings = load(PulumiConfigSource(pulumi.get_project()))

identity = EntraAccess("entra", EntraAccessArgs(entra=settings.entra, hostname=settings.hostname,
                                                session_max=settings.gateway.cookie_expire, team=settings.team))

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

# Each VM: created (if the program makes VMs), converged, and given its gateway. One VM for the
# single IDE user; a team's VMs each host their own workspaces (docs/team.md).
for vm in settings.machines:
    machine = None
    if settings.vm_provider.creates_vm:
        # Imported only when the program creates the VM (the provider SDKs are large).
        from components.vm.created import CreatedVm

        machine = CreatedVm(vm.resource("machine"), vm.hostname, settings.vm_provider, vm.topology)
        pulumi.export(vm.resource("vmMachineId"), machine.machine_id)
    host = DmzHost(vm.resource("vm"), vm.topology, settings.host, machine, workspaces=vm.workspaces)
    gateway = GatewayStack(
        vm.resource("gateway"),
        GatewayStackArgs(
            hostname=settings.hostname,
            topology=vm.topology,
            gateway=settings.gateway,
            connection=host.connection,
            client_id=identity.client_id,
            issuer_url=identity.issuer_url,
            group_object_id=identity.group_object_id,
            client_secret=identity.client_secret,
            after=[host],
            tunnel=tunnel,
            team=settings.team,
            vm=vm.name,
        ),
    )
    # The central Caddy's site block and the DMZ hop's files for its host (render_caddy.FRONT_HOP_HOME/<hop>/),
    # one set per VM; None with Cloudflare.
    pulumi.export(vm.resource("frontProxySite"), gateway.front_site)
    pulumi.export(vm.resource("frontProxyHopCa"), gateway.hop_ca_cert)
    pulumi.export(vm.resource("frontProxyHopCert"), gateway.front_proxy_hop_cert)
    pulumi.export(vm.resource("frontProxyHopKey"), gateway.front_proxy_hop_key)
    pulumi.export(vm.resource("hopCertNotAfter"), gateway.hop_not_after)
    pulumi.export(vm.resource("cookieSecretUrn"), gateway.cookie_secret_urn)

if settings.fortigate is not None:
    FortigateEdge("fortigate", FortigateEdgeArgs(fortigate=settings.fortigate, topology=settings.topology,
                                                 vms=settings.team_machines))

pulumi.export("url", settings.public_url)
pulumi.export("edge", settings.edge)
pulumi.export("vmProvider", settings.vm_provider.kind)
pulumi.export("entraClientId", identity.client_id)
pulumi.export("entraTenantId", identity.tenant_id)
pulumi.export("entraIssuerUrl", identity.issuer_url)
pulumi.export("entraGroupObjectId", identity.group_object_id)
pulumi.export("signOutUrl", identity.sign_out_url)
if settings.team is not None:
    pulumi.export("workspaces", settings.workspace_urls)
    pulumi.export("signOutUrls", identity.sign_out_urls)  # per workspace host (signOutUrl is None)
