"""Words for the demo's styles: a description and English + Chinese tags per style.

Why: the demo library is what a merchandiser first searches (``stylerec styles
search 复古``), so each artwork and backdrop material says in words what it
looks like, the way a shop would describe it, in the two languages the search
is built for.  Keyed by the style's *kind* (``stripes``, ``woodcut``, the
material name); a repeated kind (``stripes-2``) shares its words.
"""

from __future__ import annotations

#: kind -> (description, extra tags).  Vintage/retro looks say so in both languages.
DESCRIPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "stripes": ("Bold parallel stripes, crisp and graphic; a sporty streetwear backdrop.",
                ("streetwear", "街头", "条纹", "运动")),
    "dots": ("Polka dots on a flat ground, a playful retro 1950s look.",
             ("retro", "vintage", "复古", "波点", "俏皮")),
    "mosaic": ("Irregular tiles like a Mediterranean mosaic; colourful and geometric.",
               ("mosaic", "马赛克", "几何", "彩色")),
    "watercolour": ("Soft watercolour washes that bleed into each other; gentle and airy.",
                    ("watercolor", "水彩", "柔和", "清新")),
    "neon": ("Glowing neon lines on a dark ground; urban nightlife and streetwear energy.",
             ("streetwear", "urban", "街头", "霓虹", "潮流")),
    "woodcut": ("Hand-cut woodblock print with hatching, like an old book illustration; "
                "vintage and monochrome.",
                ("vintage", "retro", "复古", "怀旧", "版画", "黑白")),
    "cubist": ("Cubist shards of colour, an art-gallery modern look.",
               ("modern art", "现代", "艺术", "立体派")),
    "pointillism": ("Dabs of pure colour in the manner of the impressionists.",
                    ("impressionist", "印象派", "点彩", "艺术")),
    "waves": ("Concentric optical waves, a hypnotic 1970s op-art pattern.",
              ("retro", "op art", "复古", "波纹", "七十年代")),
    "plaid": ("Woven tartan check, a heritage retro textile.",
              ("vintage", "heritage", "tartan", "复古", "格纹", "英伦")),
    "ink": ("Splashes of black ink on paper, in the spirit of Chinese ink painting.",
            ("ink wash", "水墨", "国风", "黑白")),
    "gradient-bands": ("Calm bands of soft colour, a minimal and quiet background.",
                       ("minimal", "clean", "极简", "简约", "素雅")),
    "brushstrokes": ("Thick expressive brushstrokes, a painterly gallery look.",
                     ("expressive", "油画", "艺术", "笔触")),
    "halftone": ("Halftone dots like an old comic print; retro pop art.",
                 ("retro", "pop art", "vintage", "复古", "波普", "漫画")),
    # backdrop materials (demo.materials)
    "marble": ("White veined marble, a clean luxury surface for jewellery and cosmetics.",
               ("luxury", "大理石", "高级", "简约")),
    "linen": ("Warm natural linen weave; soft, homely and calm.",
              ("natural", "亚麻", "自然", "温暖")),
    "terrazzo": ("Speckled terrazzo floor, a playful retro 1970s surface.",
                 ("retro", "复古", "水磨石")),
    "kraft-paper": ("Brown kraft paper with fibres, a rustic vintage parcel look.",
                    ("vintage", "rustic", "复古", "怀旧", "牛皮纸")),
    "concrete": ("Raw grey concrete, an industrial urban backdrop for streetwear.",
                 ("industrial", "streetwear", "街头", "工业风", "水泥")),
    "studio-gradient": ("Seamless studio paper with a soft gradient; minimal product shots.",
                        ("minimal", "studio", "极简", "简约", "影棚")),
}


def describe(name: str) -> tuple[str, tuple[str, ...]]:
    """Description and extra tags of a demo style by name (``stripes-2`` -> ``stripes``)."""
    kind = name
    if kind not in DESCRIPTIONS and "-" in kind and kind.rsplit("-", 1)[1].isdigit():
        kind = kind.rsplit("-", 1)[0]
    return DESCRIPTIONS.get(kind, ("", ()))
