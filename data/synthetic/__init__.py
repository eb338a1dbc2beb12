"""The generated demo world: a small, seeded online shop with a known (planted) truth.

``generate_world(out_dir, WorldConfig(...))`` writes procedural product photos (and
their exact masks), procedural style images, simulated shoppers' event logs and the
planted preferences; ``World.load(out_dir)`` reads them back.  The file layout is a
contract shared with the data, recsys and A/B code (see ``docs/demo_world.md``).
"""

from data.synthetic.shoppers import ClickModel
from data.synthetic.world import TRUTH_KEYS, World, WorldConfig, generate_world

__all__ = ["ClickModel", "TRUTH_KEYS", "World", "WorldConfig", "generate_world"]
