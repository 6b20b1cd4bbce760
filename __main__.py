"""hardened-code-server: wires validated settings into the layers and exports the outputs.

No logic lives here: settings validate the stack config (all problems at once, before any
resource exists), components build each layer.
"""

import pulumi

from components.cloudflare.edge import CloudflareEdge, CloudflareEdgeArgs
from components.identity import EntraAccess, EntraAccessArgs
from components.settings import PulumiConfigSource, load

settings = load(PulumiConfigSource(pulumi.get_project()))

identity = EntraAccess("entra", EntraAccessArgs(entra=settings.entra, hostname=settings.hostname))

if settings.cloudflare is not None:
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
    pulumi.export("cloudflareTunnelId", edge.tunnel_id)
    pulumi.export("cloudflareAccessAud", edge.access_aud)

pulumi.export("url", settings.public_url)
pulumi.export("edge", settings.edge)
pulumi.export("entraClientId", identity.client_id)
pulumi.export("entraTenantId", identity.tenant_id)
pulumi.export("entraIssuerUrl", identity.issuer_url)
pulumi.export("entraGroupObjectId", identity.group_object_id)
