"""hardened-code-server: wires validated settings into the layers and exports the outputs.

No logic lives here: settings validate the stack config (all problems at once, before any
resource exists), components build each layer.
"""

import pulumi

from components.identity import EntraAccess, EntraAccessArgs
from components.settings import PulumiConfigSource, load

settings = load(PulumiConfigSource(pulumi.get_project()))

identity = EntraAccess("entra", EntraAccessArgs(entra=settings.entra, hostname=settings.hostname))

pulumi.export("url", settings.public_url)
pulumi.export("entraClientId", identity.client_id)
pulumi.export("entraTenantId", identity.tenant_id)
pulumi.export("entraIssuerUrl", identity.issuer_url)
pulumi.export("entraGroupObjectId", identity.group_object_id)
