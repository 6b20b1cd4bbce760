# first-boot: a VM the program created has finished cloud-init (its user-data: the admin, the host key).
# Only for vmProvider proxmox/digitalocean. The pinned SSH session that runs this is itself the
# proof that the generated host key is in place; this waits for the rest of cloud-init's boot.
command -v cloud-init >/dev/null || hcs_fail "cloud-init is not installed: a created VM boots from a cloud-init image (the Proxmox template, the droplet's image)"
# Exit 0: done; 1: failed; 2: done with recoverable errors (23.4+). Only 0 lets the setup go on.
if cloud-init status --wait >/dev/null; then
    echo "cloud-init: done"
else
    rc=$?
    cloud-init status --long >&2 || true
    hcs_fail "cloud-init finished with status $rc (details above; /var/log/cloud-init.log on the VM)"
fi
hcs_done
