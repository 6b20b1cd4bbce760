"""FortiGate edge: FortiOS REST client, generic CMDB dynamic provider, typed resources, the Edge component."""
