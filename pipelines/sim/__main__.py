"""`python -m pipelines.sim serve ...`"""

from pipelines.sim.cli import sim

if __name__ == "__main__":
    sim()
