"""The program's host steps on a real root: `mockgraph` reads `DmzHost`'s commands under Pulumi's
mocks, `sample` is a complete host config, `realhost` starts a root and runs the steps over SSH."""
