"""`make demo` (`demo.up`/`demo.down`) and what the booted demo VM is driven and judged with: the test
network's stand-ins (code hosts, extension gallery, registry images, the FortiGate device), the
attacker at the IDE's terminal, egress probes and listeners."""
