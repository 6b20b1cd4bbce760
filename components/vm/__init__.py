"""The DMZ VM from code: a Proxmox VE clone or a DigitalOcean droplet, booted with the program's user-data.

`vmProvider: existing` needs nothing here. With a provider, `created.create_vm` registers the
generated host key (`components.host.created_vm`), the provider's resources, and hands `DmzHost`
the pin and the machine's identity (replacing the machine re-runs every host step).
"""
