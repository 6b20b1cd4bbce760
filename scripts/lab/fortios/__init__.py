"""A STAND-IN for a FortiGate's REST API (`emulator`, held to the FortiOS 7.4 field facts), Pulumi's
real provider host driving the dynamic provider against it (`host`), and the engine's part (`stack`)."""
