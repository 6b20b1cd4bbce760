"""The DMZ host: its SSH connection, setup steps, file installer and pure renderers."""
