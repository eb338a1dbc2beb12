"""The generated demo world: a small, seeded online shop with a known (planted) truth.

``generate_world(out_dir, WorldConfig(...))`` writes procedural product photos (and
their exact masks), procedural style images, simulated shoppers' event logs and the
planted preferences; ``World.load(out_dir)`` reads them back.  The file layout is a
contract shared with the data, recsys and A/B code (see ``docs/demo_world.md``).

A package of its own (it was ``data.synthetic``): a simulator of shops, shoppers
and photos is no part of the data layer.  It sits beside ``recsys`` and
``stylizer``: it imports ``data`` (the schemas its files follow) and nothing
else of ours, and only ``pipelines`` (the ``generate``/``demo`` commands),
tests, notebooks and benchmarks import it.
"""

from demo.shoppers import ClickModel
from demo.world import TRUTH_KEYS, World, WorldConfig, generate_world

__all__ = ["ClickModel", "TRUTH_KEYS", "World", "WorldConfig", "generate_world"]
