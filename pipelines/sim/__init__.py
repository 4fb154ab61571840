"""The national-platform simulator (README.md): a world, its daily events, bulk drops and API
feeds for a node, objections answered, and the ground truth to test the hub against.

Entry points, by module (imported as modules, so starting the process does not build a world):
`simulator.Simulator` (the engine, in process), `server.serve` / `server.create_app` (its HTTP
surface), `process.SimulatorProcess` (the engine as a child process on 127.0.0.1, for the demo,
tests and benchmarks); `python -m pipelines.sim serve` starts it (cli.py)."""
