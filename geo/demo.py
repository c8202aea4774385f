"""A deterministic demo road network of central Zhengzhou.

No public road-line data for Zhengzhou is at hand, so the demo is *made*:
the arterials and the better-known smaller roads carry their real names and
run roughly where they really are (positions and orientations were read off
public bus-stop names such as "建设路桐柏路站", which name crossings, and are
typed in below as a small table of rounded coordinates; no data file is
copied). Blocks between them are filled with generated local streets, some of
them curved, some dead ends, some ending at another street (T-junctions).

The lot is cut into responsibility segments named ``Road（From至To）`` after the
roads at both ends, as Zhengzhou's road-chief system names them:

* arterial and secondary roads are cut where another arterial or secondary road
  meets them, not at every lane; a stretch longer than 1.5 km is also cut at
  the side street nearest its middle;
* local streets are cut at every junction; an end with no street is "尽头";
* pieces shorter than 80 m are merged into a neighbour (a short dead end is
  dropped), and the density of local streets is tuned, then the shortest pairs
  of local pieces merged, until exactly ``target_segments`` remain;
* from/to read north to south on north-south roads and west to east otherwise.

Everything depends only on the seed: the same seed gives a byte-identical file
(see :func:`geo.network.save_network`). Run ``python -m geo.demo OUT_PATH`` to
regenerate the bundled ``geo/data/zhengzhou_demo.geojson.gz``.

Known, deliberate departures from the real map, for the demo's needs:

* The API contract's example report (GCJ-02 34.77281 N, 113.68352 E, which is
  WGS84 34.77388 N, 113.67739 E) is acknowledged with the segment
  "花园路（农业路至黄河路）" in 金水区. On the real map that point lies on 花园路
  just *south* of 黄河路, and 红旗路/红专路/丰产路 cross 花园路 between 黄河路 and
  农业路. So here 黄河路 and the 纬N路 south of it run ~380 m further south, and
  红旗路, 红专路 and 丰产路 stop short of 花园路 on both sides (as streets do at
  walled compounds), which makes 花园路 one long segment from 黄河路 to 农业路.
* District borders are Voronoi cells around a few points per district, not the
  real (unlicensed) boundary polygons; 郑东新区, 高新区 and 经开区 are treated
  as if they were districts of their own.
* Where a road leaves the demo extent, the segment is named after the ring road
  beyond that edge (西四环, 南四环, 东四环, 北四环).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import LineString, Point, Polygon, box
from shapely.ops import substring

from .network import (
    COORD_DECIMALS,
    Assignment,
    District,
    Network,
    Person,
    Segment,
    Subdistrict,
    save_network,
)

__all__ = ["DEFAULT_SEED", "DEFAULT_SEGMENTS", "EXTENT", "generate_demo_network", "main"]

DEFAULT_SEED: Final = 20180501  # the road-chief system's launch, May 2018
DEFAULT_SEGMENTS: Final = 2495  # Zhengzhou's segment count as reported in the press
EXTENT: Final = (113.55, 34.68, 113.80, 34.86)  # lon/lat box of the demo (WGS84)
VALID_FROM: Final = dt.date(2026, 1, 1)

DEAD_END: Final = "尽头"  # the "to" of a segment whose street ends without a crossing
# Where a road leaves the extent, its end segment is named after the ring road beyond.
EDGE_ROADS: Final = {"W": "西四环", "S": "南四环", "E": "东四环", "N": "北四环"}

MIN_SEGMENT_M: Final = 80.0  # shorter pieces are merged into a neighbour
MAX_SEGMENT_M: Final = 1500.0  # longer major-road pieces are also cut at a side street
MAJOR_TAIL_M: Final = 150.0  # a major road's end beyond its last crossing shorter than this is cut
LOCAL_TAIL_M: Final = 60.0  # a local dead end shorter than this is cut
CLUSTER_M: Final = 12.0  # crossings closer than this along a road are one junction
CLASS_RANK: Final = {"arterial": 0, "secondary": 1, "local": 2}

# -- the road table ------------------------------------------------------------------
# (name, class, control points lon/lat WGS84). Read off bus-stop crossings (2013)
# and rounded; curves come from a Catmull-Rom spline through the points. Ends may
# stop a little short of the road they meet: _extend_ends() carries them on to it.
Road = tuple[str, str, tuple[tuple[float, float], ...]]

# The tables below are laid out by hand, one road or place per entry.
# fmt: off
ROADS: Final[tuple[Road, ...]] = (
    # north-south arterials, west to east
    ("西三环", "arterial", ((113.5805, 34.6800), (113.5815, 34.7500), (113.5835, 34.8000),
                          (113.5860, 34.8600))),
    ("秦岭路", "arterial", ((113.5984, 34.7230), (113.5971, 34.7491), (113.5971, 34.7740),
                          (113.5984, 34.7990), (113.5986, 34.8092))),
    ("桐柏路", "arterial", ((113.6088, 34.7020), (113.6088, 34.7133), (113.6070, 34.7370),
                          (113.6084, 34.7604), (113.6129, 34.7838), (113.6140, 34.8030),
                          (113.6149, 34.8147))),
    ("嵩山路", "arterial", ((113.6245, 34.7012), (113.6235, 34.7115), (113.6217, 34.7298),
                          (113.6218, 34.7480), (113.6240, 34.7662))),
    ("大学路", "arterial", ((113.6395, 34.6800), (113.6385, 34.7018), (113.6380, 34.7175),
                          (113.6382, 34.7331), (113.6391, 34.7480))),
    ("京广路", "arterial", ((113.6505, 34.6800), (113.6503, 34.7012), (113.6515, 34.7173),
                          (113.6498, 34.7333), (113.6453, 34.7489))),
    ("人民路", "arterial", ((113.6692, 34.7547), (113.6720, 34.7598), (113.6767, 34.7648))),
    ("紫荆山路", "arterial", ((113.6767, 34.7648), (113.6755, 34.7467), (113.6756, 34.7322),
                            (113.6767, 34.7176), (113.6755, 34.7113))),
    ("紫荆山南路", "arterial", ((113.6755, 34.7113), (113.6757, 34.7025), (113.6768, 34.6936),
                              (113.6770, 34.6800))),
    # The contract example point lies on the second span (see the module docstring).
    ("花园路", "arterial", ((113.6767, 34.7648), (113.6774, 34.7739), (113.6768, 34.7890),
                          (113.6760, 34.8018), (113.6741, 34.8350), (113.6722, 34.8600))),
    ("文化路", "arterial", ((113.6600, 34.7655), (113.6598, 34.7681), (113.6594, 34.8026),
                          (113.6519, 34.8360), (113.6455, 34.8600))),
    ("经三路", "arterial", ((113.6869, 34.7653), (113.6862, 34.7792), (113.6861, 34.7932),
                          (113.6867, 34.8071), (113.6872, 34.8215))),
    ("未来路", "arterial", ((113.7009, 34.6990), (113.7009, 34.7228), (113.6982, 34.7393),
                          (113.6986, 34.7557), (113.7023, 34.7720))),
    ("中州大道", "arterial", ((113.7240, 34.6800), (113.7205, 34.7200), (113.7160, 34.7389),
                            (113.7053, 34.7730), (113.6954, 34.8073), (113.6862, 34.8418),
                            (113.6835, 34.8600))),
    ("南阳路", "arterial", ((113.6455, 34.7709), (113.6365, 34.7857), (113.6271, 34.8002),
                          (113.6172, 34.8146), (113.6120, 34.8330))),
    ("东风南路", "arterial", ((113.7597, 34.7190), (113.7597, 34.7412), (113.7615, 34.7541),
                            (113.7602, 34.7667), (113.7558, 34.7791))),
    # east-west arterials, south to north
    ("南三环", "arterial", ((113.5500, 34.7035), (113.5850, 34.7030), (113.6228, 34.7008),
                          (113.6528, 34.7008), (113.6828, 34.7004), (113.7128, 34.6997),
                          (113.7600, 34.7000), (113.8000, 34.7004))),
    ("航海路", "arterial", ((113.5500, 34.7232), (113.5960, 34.7224), (113.6653, 34.7220),
                          (113.7346, 34.7219), (113.8000, 34.7222))),
    ("陇海路", "arterial", ((113.5800, 34.7384), (113.6189, 34.7375), (113.6577, 34.7386),
                          (113.6964, 34.7415), (113.7300, 34.7422), (113.7590, 34.7418))),
    ("中原路", "arterial", ((113.5500, 34.7486), (113.5802, 34.7487), (113.6131, 34.7484),
                          (113.6461, 34.7479), (113.6600, 34.7494))),
    ("郑汴路", "arterial", ((113.6858, 34.7482), (113.7011, 34.7488), (113.7107, 34.7484),
                          (113.7203, 34.7469), (113.7600, 34.7428), (113.8000, 34.7392))),
    ("商都路", "arterial", ((113.7128, 34.7490), (113.7238, 34.7490), (113.7503, 34.7485),
                          (113.8000, 34.7495))),
    ("建设路", "arterial", ((113.5805, 34.7610), (113.5958, 34.7581), (113.6089, 34.7565),
                          (113.6222, 34.7558), (113.6330, 34.7590), (113.6410, 34.7640))),
    ("金水路", "arterial", ((113.6410, 34.7640), (113.6736, 34.7648), (113.7093, 34.7638))),
    ("金水东路", "arterial", ((113.7093, 34.7638), (113.7300, 34.7640), (113.7492, 34.7666),
                            (113.7717, 34.7717), (113.8000, 34.7780))),
    ("黄河路", "arterial", ((113.6355, 34.7702), (113.6543, 34.7719), (113.6761, 34.7726),
                          (113.6980, 34.7721), (113.7055, 34.7722))),
    ("农业路", "arterial", ((113.6105, 34.7772), (113.6441, 34.7864), (113.6743, 34.7891),
                          (113.7013, 34.7870))),
    ("农业东路", "arterial", ((113.7013, 34.7870), (113.7185, 34.7863), (113.7318, 34.7838),
                            (113.7448, 34.7798), (113.7560, 34.7772))),
    ("东风路", "arterial", ((113.6150, 34.7995), (113.6328, 34.7992), (113.6843, 34.7970),
                          (113.6989, 34.7946))),
    ("东风东路", "arterial", ((113.6989, 34.7946), (113.7231, 34.7907), (113.7406, 34.7872),
                            (113.7574, 34.7809), (113.8000, 34.7760))),
    ("北环路", "arterial", ((113.5845, 34.8150), (113.6079, 34.8140), (113.6436, 34.8119),
                          (113.6692, 34.8110),
                          (113.6940, 34.8120))),
    ("国基路", "arterial", ((113.6135, 34.8207), (113.6440, 34.8210), (113.6680, 34.8209),
                          (113.6921, 34.8203))),
    ("三全路", "arterial", ((113.5865, 34.8352), (113.6000, 34.8345), (113.6135, 34.8337),
                          (113.6386, 34.8311),
                          (113.6638, 34.8297), (113.6890, 34.8297))),
    ("北三环", "arterial", ((113.5500, 34.8392), (113.6000, 34.8395), (113.6500, 34.8395),
                          (113.7000, 34.8390), (113.8000, 34.8380))),
    ("科学大道", "arterial", ((113.5500, 34.8088), (113.5694, 34.8091), (113.5840, 34.8089),
                            (113.5990, 34.8088))),
    # secondary roads (some of them only part of the way across)
    ("华山路", "secondary", ((113.5942, 34.7301), (113.5936, 34.7492), (113.5931, 34.7588))),
    ("伏牛路", "secondary", ((113.6013, 34.7301), (113.6009, 34.7477), (113.6009, 34.7564))),
    ("前进路", "secondary", ((113.6039, 34.7439), (113.6034, 34.7518), (113.6036, 34.7558))),
    ("文化宫路", "secondary", ((113.6113, 34.7302), (113.6110, 34.7391), (113.6109, 34.7568))),
    ("工人路", "secondary", ((113.6138, 34.7111), (113.6145, 34.7262), (113.6148, 34.7414),
                           (113.6148, 34.7565))),
    ("百花路", "secondary", ((113.6184, 34.7438), (113.6186, 34.7476), (113.6182, 34.7553))),
    ("兴华街", "secondary", ((113.6260, 34.7016), (113.6267, 34.7157), (113.6269, 34.7298),
                           (113.6268, 34.7439))),
    ("淮南街", "secondary", ((113.6298, 34.7023), (113.6297, 34.7119), (113.6304, 34.7309))),
    ("交通路", "secondary", ((113.6412, 34.7259), (113.6409, 34.7317), (113.6413, 34.7434))),
    ("庆丰街", "secondary", ((113.6466, 34.7261), (113.6462, 34.7333), (113.6463, 34.7369))),
    ("碧云路", "secondary", ((113.6591, 34.7004), (113.6588, 34.7141), (113.6589, 34.7210))),
    ("郑密路", "secondary", ((113.6215, 34.7136), (113.6195, 34.7190), (113.6186, 34.7301))),
    ("新郑路", "secondary", ((113.6848, 34.6998), (113.6799, 34.7122), (113.6768, 34.7228))),
    ("通站路", "secondary", ((113.6838, 34.7003), (113.6776, 34.7074), (113.6735, 34.7120))),
    ("城东路", "secondary", ((113.6833, 34.7134), (113.6849, 34.7305), (113.6851, 34.7476),
                           (113.6839, 34.7647))),
    ("东明路", "secondary", ((113.6935, 34.7389), (113.6931, 34.7570), (113.6935, 34.7751),
                           (113.6948, 34.7931))),
    ("英协路", "secondary", ((113.7105, 34.7389), (113.7117, 34.7469), (113.7116, 34.7631))),
    ("通泰路", "secondary", ((113.7266, 34.7389), (113.7269, 34.7465), (113.7271, 34.7618))),
    ("黄河南路", "secondary", ((113.7413, 34.7383), (113.7401, 34.7474), (113.7390, 34.7565),
                             (113.7395, 34.7660))),
    ("农业南路", "secondary", ((113.7503, 34.7484), (113.7511, 34.7543), (113.7487, 34.7660))),
    ("博学路", "secondary", ((113.7866, 34.7508), (113.7928, 34.7708), (113.7931, 34.7909),
                           (113.7875, 34.8111), (113.7860, 34.8385))),
    ("沙口路", "secondary", ((113.6410, 34.7640), (113.6305, 34.7784), (113.6194, 34.7941),
                           (113.6079, 34.8096), (113.6040, 34.8150))),
    ("丰乐路", "secondary", ((113.6486, 34.7783), (113.6395, 34.7891), (113.6312, 34.8003),
                           (113.6235, 34.8118))),
    ("天明路", "secondary", ((113.6458, 34.7860), (113.6429, 34.7916), (113.6383, 34.7984),
                           (113.6335, 34.8051), (113.6305, 34.8092))),
    ("丰庆路", "secondary", ((113.6468, 34.7886), (113.6422, 34.8067), (113.6415, 34.8249),
                           (113.6449, 34.8434))),
    ("索凌路", "secondary", ((113.6311, 34.8097), (113.6339, 34.8208), (113.6356, 34.8320),
                           (113.6361, 34.8433))),
    ("金杯路", "secondary", ((113.6259, 34.8200), (113.6250, 34.8226), (113.6245, 34.8330))),
    ("长兴路", "secondary", ((113.6206, 34.8152), (113.6201, 34.8208), (113.6192, 34.8321),
                           (113.6190, 34.8600))),
    ("江山路", "secondary", ((113.6128, 34.8335), (113.6054, 34.8416), (113.5972, 34.8506),
                           (113.5905, 34.8600))),
    ("天河路", "secondary", ((113.6047, 34.8426), (113.6051, 34.8508), (113.6054, 34.8600))),
    ("信息学院路", "secondary", ((113.6518, 34.8006), (113.6526, 34.8065), (113.6531, 34.8095))),
    ("东三街", "secondary", ((113.6522, 34.7720), (113.6516, 34.7830), (113.6514, 34.7884))),
    ("卫生路", "secondary", ((113.6496, 34.7679), (113.6501, 34.7714), (113.6489, 34.7783))),
    ("黄河北街", "secondary", ((113.6545, 34.7722), (113.6552, 34.7792), (113.6540, 34.7808))),
    ("经八路", "secondary", ((113.6632, 34.7660), (113.6636, 34.7719), (113.6646, 34.7780))),
    ("经七路", "secondary", ((113.6660, 34.7661), (113.6659, 34.7786), (113.6667, 34.7849))),
    ("经六路", "secondary", ((113.6679, 34.7660), (113.6678, 34.7696), (113.6676, 34.7711))),
    ("经五路", "secondary", ((113.6716, 34.7680), (113.6719, 34.7747), (113.6714, 34.7813),
                           (113.6701, 34.7879))),
    ("政六街", "secondary", ((113.6796, 34.7726), (113.6797, 34.7780), (113.6796, 34.7818))),
    ("政七街", "secondary", ((113.6820, 34.7698), (113.6816, 34.7796), (113.6818, 34.7882),
                           (113.6825, 34.7968))),
    ("经四路", "secondary", ((113.6831, 34.7686), (113.6835, 34.7726))),
    ("经二路", "secondary", ((113.6900, 34.7715), (113.6897, 34.7760), (113.6890, 34.7848))),
    ("经一路", "secondary", ((113.6913, 34.7714), (113.6912, 34.7776), (113.6916, 34.7900))),
    ("姚寨路", "secondary", ((113.6972, 34.7730), (113.6976, 34.7776), (113.6978, 34.7869))),
    ("福彩路", "secondary", ((113.6927, 34.8000), (113.6921, 34.8027), (113.6919, 34.8083))),
    ("金梭路", "secondary", ((113.5585, 34.7953), (113.5588, 34.8037), (113.5585, 34.8122),
                           (113.5577, 34.8206), (113.5570, 34.8392))),
    ("银屏路", "secondary", ((113.5540, 34.7953), (113.5550, 34.8047), (113.5544, 34.8140),
                           (113.5525, 34.8233), (113.5520, 34.8392))),
    ("瑞达路", "secondary", ((113.5770, 34.7821), (113.5667, 34.7920), (113.5619, 34.8035),
                           (113.5626, 34.8168))),
    ("淮河路", "secondary", ((113.5848, 34.7303), (113.6069, 34.7306), (113.6290, 34.7304),
                           (113.6511, 34.7296))),
    ("汝河路", "secondary", ((113.5818, 34.7334), (113.5999, 34.7338), (113.6180, 34.7339),
                           (113.6361, 34.7336))),
    ("沁河路", "secondary", ((113.5812, 34.7241), (113.5932, 34.7241), (113.6093, 34.7241),
                           (113.6173, 34.7242))),
    ("政通路", "secondary", ((113.6268, 34.7262), (113.6349, 34.7262), (113.6510, 34.7266))),
    ("长江路", "secondary", ((113.6080, 34.7122), (113.6294, 34.7118), (113.6517, 34.7115),
                           (113.6740, 34.7113), (113.7012, 34.7110))),
    ("伊河路", "secondary", ((113.5936, 34.7440), (113.6152, 34.7440), (113.6259, 34.7436))),
    ("颍河路", "secondary", ((113.5947, 34.7416), (113.6080, 34.7415), (113.6146, 34.7418))),
    ("桃源路", "secondary", ((113.6268, 34.7419), (113.6342, 34.7410), (113.6379, 34.7416))),
    ("康复前街", "secondary", ((113.6408, 34.7430), (113.6458, 34.7428), (113.6482, 34.7436))),
    ("解放路", "secondary", ((113.6600, 34.7494), (113.6650, 34.7525), (113.6692, 34.7547))),
    ("西大街", "secondary", ((113.6640, 34.7525), (113.6709, 34.7511), (113.6755, 34.7504))),
    ("东大街", "secondary", ((113.6755, 34.7504), (113.6817, 34.7491), (113.6853, 34.7483))),
    ("商城路", "secondary", ((113.6745, 34.7540), (113.6812, 34.7528), (113.6967, 34.7524),
                           (113.7122, 34.7540))),
    ("城北路", "secondary", ((113.6797, 34.7570), (113.6838, 34.7568), (113.6921, 34.7564))),
    ("顺河路", "secondary", ((113.6776, 34.7612), (113.6848, 34.7612), (113.6993, 34.7608))),
    ("凤凰路", "secondary", ((113.6863, 34.7447), (113.6944, 34.7448), (113.6984, 34.7449))),
    ("货站街", "secondary", ((113.6848, 34.7384), (113.6966, 34.7392), (113.7084, 34.7400),
                           (113.7159, 34.7400))),
    ("商鼎路", "secondary", ((113.7270, 34.7555), (113.7473, 34.7567), (113.7880, 34.7572),
                           (113.8000, 34.7572))),
    ("棉纺路", "secondary", ((113.5971, 34.7653), (113.6054, 34.7621), (113.6140, 34.7601),
                           (113.6230, 34.7592))),
    ("西站路", "secondary", ((113.5981, 34.7711), (113.6071, 34.7696), (113.6161, 34.7678),
                           (113.6250, 34.7658))),
    ("化工路", "secondary", ((113.5500, 34.7825), (113.5628, 34.7835), (113.5791, 34.7821),
                           (113.5972, 34.7786))),
    ("冉屯路", "secondary", ((113.5972, 34.7786), (113.6067, 34.7768), (113.6118, 34.7763))),
    ("梧桐街", "secondary", ((113.5500, 34.7954), (113.5636, 34.7954))),
    ("枫杨街", "secondary", ((113.5500, 34.8153), (113.5620, 34.8160))),
    ("优胜南路", "secondary", ((113.6496, 34.7679), (113.6555, 34.7680), (113.6584, 34.7681))),
    ("优胜北路", "secondary", ((113.6543, 34.7690), (113.6563, 34.7700), (113.6608, 34.7702))),
    # 纬N路 and 黄河路 moved ~380 m south for the contract example; see the docstring.
    ("纬一路", "secondary", ((113.6634, 34.7662), (113.6699, 34.7660), (113.6732, 34.7664))),
    ("纬二路", "secondary", ((113.6768, 34.7675), (113.6824, 34.7677), (113.6937, 34.7672))),
    ("纬三路", "secondary", ((113.6632, 34.7689), (113.6687, 34.7684), (113.6715, 34.7684))),
    ("纬四路", "secondary", ((113.6811, 34.7698), (113.6897, 34.7698), (113.7068, 34.7696))),
    ("纬五路", "secondary", ((113.6634, 34.7711), (113.6759, 34.7709), (113.7008, 34.7710))),
    # These three stop short of 花园路 on both sides (see the docstring).
    ("红旗路", "secondary", ((113.6506, 34.7785), (113.6664, 34.7781), (113.6723, 34.7780))),
    ("红旗路", "secondary", ((113.6790, 34.7780), (113.6823, 34.7779), (113.6982, 34.7780))),
    ("红专路", "secondary", ((113.6540, 34.7821), (113.6701, 34.7811), (113.6723, 34.7811))),
    ("红专路", "secondary", ((113.6790, 34.7811), (113.6861, 34.7810), (113.7022, 34.7818))),
    ("丰产路", "secondary", ((113.6613, 34.7844), (113.6723, 34.7845))),
    ("丰产路", "secondary", ((113.6814, 34.7846), (113.6858, 34.7847), (113.6980, 34.7849))),
    ("林科路", "secondary", ((113.6822, 34.7899), (113.6930, 34.7902), (113.6983, 34.7906))),
    ("农科路", "secondary", ((113.6642, 34.7928), (113.6715, 34.7936), (113.6863, 34.7936))),
    ("鑫苑路", "secondary", ((113.6864, 34.7986), (113.6955, 34.7968), (113.7001, 34.7959))),
    ("文劳路", "secondary", ((113.6512, 34.8051), (113.6553, 34.8062), (113.6636, 34.8061),
                           (113.6765, 34.8060))),
    ("博颂路", "secondary", ((113.6254, 34.8096), (113.6364, 34.8086), (113.6584, 34.8098))),
    ("广电南路", "secondary", ((113.6865, 34.8069), (113.6928, 34.8067), (113.6960, 34.8065))),
    ("银河路", "secondary", ((113.6131, 34.8265), (113.6204, 34.8284), (113.6341, 34.8245))),
    ("新柳路", "secondary", ((113.6348, 34.8316), (113.6494, 34.8308), (113.6545, 34.8305))),
    ("龙门路", "secondary", ((113.6195, 34.8425), (113.6357, 34.8428), (113.6462, 34.8434),
                           (113.6700, 34.8436), (113.6860, 34.8432))),
    ("渠东路", "secondary", ((113.6632, 34.8204), (113.6585, 34.8267), (113.6561, 34.8299))),
    ("九如路", "secondary", ((113.7262, 34.7800), (113.7305, 34.7850), (113.7352, 34.7900),
                           (113.7405, 34.8020))),
    ("众意路", "secondary", ((113.7200, 34.7808), (113.7195, 34.7860), (113.7190, 34.7915),
                           (113.7182, 34.8150), (113.7178, 34.8385))),
    ("心怡路", "secondary", ((113.7644, 34.7725), (113.7644, 34.7809), (113.7642, 34.8075))),
    ("祭城路", "secondary", ((113.7644, 34.7955), (113.7876, 34.7948), (113.8000, 34.7944))),
    ("正光路", "secondary", ((113.7410, 34.7686), (113.7483, 34.7702), (113.7628, 34.7736))),
    ("永平路", "secondary", ((113.7159, 34.7400), (113.7244, 34.7393), (113.7475, 34.7410),
                           (113.7591, 34.7418))),
    # 黄河东路 meets the CBD's outer ring from the west and leaves it to the south-east.
    ("黄河东路", "arterial", ((113.7055, 34.7722), (113.7090, 34.7727), (113.7150, 34.7733))),
    ("黄河东路", "arterial", ((113.7280, 34.7728), (113.7340, 34.7712), (113.7380, 34.7690),
                            (113.7395, 34.7660))),
    ("经北二路", "secondary", ((113.7330, 34.7270), (113.7613, 34.7277), (113.8000, 34.7280))),
    ("经南三路", "secondary", ((113.7207, 34.7175), (113.7614, 34.7166), (113.8000, 34.7162))),
    ("经南五路", "secondary", ((113.7214, 34.7100), (113.7600, 34.7096), (113.8000, 34.7092))),
    ("经南八路", "secondary", ((113.7250, 34.6930), (113.7600, 34.6926), (113.8000, 34.6922))),
)

# 郑东新区's CBD: two ring roads round 如意湖, joined by radial streets.
CBD_CENTRE: Final = (113.7215, 34.7745)
CBD_RINGS: Final = (("商务内环路", 320.0), ("商务外环路", 620.0))
CBD_RADIALS: Final = ("商务东一街", "商务东二街", "商务东三街", "商务东四街",
                      "商务西一街", "商务西二街", "商务西三街", "商务西四街")
# Lakes: no streets cross them. (centre lon, lat, half-axes east and north in metres)
LAKES: Final = ((113.7215, 34.7745, 210.0, 210.0),  # 如意湖
                (113.7520, 34.8150, 1050.0, 1250.0))  # 龙湖
LONGHU_RING: Final = ("龙湖外环路", 1400.0, 1600.0)

# 经开区 numbers its north-south streets: 经开第一大街, 经开第二大街, ...
JINGKAI_STREETS: Final = 19
JINGKAI_WEST: Final = 113.7342
JINGKAI_STEP: Final = 0.0034

# The contract example: GCJ-02 (113.68352, 34.77281) is this WGS84 point.
CONTRACT_POINT: Final = (113.6773929, 34.7738784)
CONTRACT_SEGMENT: Final = ("花园路", "农业路", "黄河路")
CONTRACT_DISTRICT: Final = "JS"
# No local street may meet 花园路 here, or the contract's segment would be split.
PROTECTED_ROADS: Final = (("花园路", (113.6774, 34.7722), (113.6768, 34.7892)),)

# -- districts -------------------------------------------------------------------------
# (code, name, kind, pinyin, Voronoi seeds near the real district's parts)
DISTRICTS: Final = (
    ("ZY", "中原区", "district", "zhongyuan",
     ((113.585, 34.765), (113.610, 34.768), (113.600, 34.745), (113.630, 34.757),
      (113.565, 34.745), (113.565, 34.770))),
    ("EQ", "二七区", "district", "erqi",
     ((113.640, 34.735), (113.625, 34.715), (113.655, 34.705), (113.610, 34.695),
      (113.655, 34.745), (113.585, 34.700), (113.565, 34.690))),
    ("GC", "管城回族区", "district", "guancheng",
     ((113.683, 34.744), (113.690, 34.725), (113.700, 34.700), (113.682, 34.688),
      (113.703, 34.745))),
    ("JS", "金水区", "district", "jinshui",
     ((113.665, 34.775), (113.685, 34.780), (113.650, 34.795), (113.675, 34.800),
      (113.665, 34.818), (113.692, 34.765), (113.640, 34.815), (113.695, 34.800))),
    ("HJ", "惠济区", "district", "huiji",
     ((113.610, 34.852), (113.650, 34.853), (113.690, 34.853), (113.585, 34.855))),
    ("ZD", "郑东新区", "zone", "zhengdong",
     ((113.730, 34.770), (113.760, 34.760), (113.782, 34.785), (113.752, 34.800),
      (113.742, 34.833), (113.785, 34.830), (113.722, 34.810), (113.725, 34.750))),
    ("GX", "高新区", "zone", "gaoxin",
     ((113.565, 34.805), (113.562, 34.830), (113.585, 34.822))),
    ("JK", "经开区", "zone", "jingkai",
     ((113.748, 34.715), (113.778, 34.722), (113.760, 34.695), (113.790, 34.700),
      (113.735, 34.690))),
)
# Sub-district offices (街道) per district with a point near each one's area; real
# names of Zhengzhou's 街道, placed approximately.
SUBDISTRICTS: Final = {
    "ZY": (("林山寨街道", 113.615, 34.775), ("建设路街道", 113.603, 34.759),
           ("棉纺路街道", 113.590, 34.768), ("三官庙街道", 113.615, 34.746),
           ("秦岭路街道", 113.592, 34.745), ("绿东村街道", 113.630, 34.760),
           ("中原西路街道", 113.565, 34.755)),
    "EQ": (("淮河路街道", 113.620, 34.729), ("解放路街道", 113.658, 34.748),
           ("一马路街道", 113.648, 34.738), ("五里堡街道", 113.630, 34.717),
           ("大学路街道", 113.643, 34.722), ("京广路街道", 113.648, 34.705),
           ("长江路街道", 113.605, 34.700)),
    "GC": (("北下街街道", 113.672, 34.757), ("东大街街道", 113.685, 34.750),
           ("南关街道", 113.670, 34.740), ("城东路街道", 113.695, 34.742),
           ("二里岗街道", 113.682, 34.726), ("紫荆山南路街道", 113.678, 34.700),
           ("航海东路街道", 113.705, 34.715)),
    "JS": (("经八路街道", 113.664, 34.772), ("花园路街道", 113.675, 34.782),
           ("丰产路街道", 113.690, 34.786), ("杜岭街道", 113.690, 34.768),
           ("大石桥街道", 113.648, 34.778), ("南阳路街道", 113.635, 34.797),
           ("文化路街道", 113.660, 34.803), ("国基路街道", 113.668, 34.824)),
    "HJ": (("长兴路街道", 113.612, 34.848), ("新城街道", 113.640, 34.852),
           ("迎宾路街道", 113.668, 34.852), ("大河路街道", 113.700, 34.853),
           ("刘寨街道", 113.585, 34.853)),
    "ZD": (("如意湖街道", 113.722, 34.775), ("商都路街道", 113.745, 34.752),
           ("博学路街道", 113.785, 34.765), ("龙子湖街道", 113.790, 34.790),
           ("祭城路街道", 113.760, 34.795), ("金光路街道", 113.785, 34.830),
           ("龙湖街道", 113.735, 34.825)),
    "GX": (("梧桐街道", 113.565, 34.795), ("枫杨街道", 113.560, 34.815),
           ("石佛街道", 113.585, 34.820), ("沟赵街道", 113.565, 34.840)),
    "JK": (("明湖街道", 113.745, 34.717), ("潮河街道", 113.775, 34.700),
           ("京航街道", 113.770, 34.728), ("前程街道", 113.740, 34.690)),
}
# fmt: on

# -- people ------------------------------------------------------------------------------
# Common surnames (roughly by frequency in Henan) and given-name characters.
SURNAMES: Final = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
    "苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史"
)
SURNAME_HEAD: Final = 12  # the first dozen are far more common: drawn half the time
GIVEN: Final = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建国红志鹏飞宇浩然晨阳"
    "海波俊峰文博思雨欣怡佳琪子涵梓轩嘉豪一鸣振宇德福建华新民卫东学军春梅秋菊冬雪"
)

# Stems for generated local-street names ("康宁一街", "康宁路"): two characters.
STEM_FIRST: Final = "康兴福顺安和泰瑞祥永宏嘉锦德仁明华昌盛丰庆宝金银翠碧青紫彩凤龙鹤"
STEM_SECOND: Final = "宁隆寿平乐安和昌盛源苑园林桥湖泉山岗庄塘溪"
CN_DIGITS: Final = "零一二三四五六七八九"


def _cn_number(n: int) -> str:
    """1..99 in Chinese numerals: 一, 十, 十一, 二十, 二十一."""
    if n < 10:
        return CN_DIGITS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else CN_DIGITS[tens]
    return head + "十" + (CN_DIGITS[ones] if ones else "")


# -- local metric frame ----------------------------------------------------------------
# Generation works in metres on an equirectangular plane centred on the extent; at
# this size (25 km) its scale error is < 0.1 %, and unlike a PROJ transform it is
# plain arithmetic, so the output cannot drift with library versions. Lengths in
# the file are geodesic (pyproj.Geod) on the final WGS84 coordinates.
_LON0: Final = 113.675
_LAT0: Final = 34.77
_WGS84_A: Final = 6378137.0
_WGS84_E2: Final = 0.00669437999014
_S: Final = math.sin(math.radians(_LAT0))
M_PER_DEG_LAT: Final = (
    math.radians(1.0) * _WGS84_A * (1 - _WGS84_E2) / (1 - _WGS84_E2 * _S * _S) ** 1.5
)
M_PER_DEG_LON: Final = (
    math.radians(1.0)
    * _WGS84_A
    * math.cos(math.radians(_LAT0))
    / math.sqrt(1 - _WGS84_E2 * _S * _S)
)


def _to_xy(lon: float, lat: float) -> tuple[float, float]:
    return ((lon - _LON0) * M_PER_DEG_LON, (lat - _LAT0) * M_PER_DEG_LAT)


def _to_lonlat_array(xy: np.ndarray) -> np.ndarray:
    out = np.empty_like(xy)
    out[:, 0] = np.round(xy[:, 0] / M_PER_DEG_LON + _LON0, COORD_DECIMALS)
    out[:, 1] = np.round(xy[:, 1] / M_PER_DEG_LAT + _LAT0, COORD_DECIMALS)
    return out


def _geom_to_lonlat(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, _to_lonlat_array)


class _Rng:
    """random.Random limited to random(): its sequence for an int seed is stable
    across Python versions, unlike randrange/choice/shuffle whose algorithms have
    changed before."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self._r.random()

    def below(self, n: int) -> int:
        return min(int(self._r.random() * n), n - 1)

    def chance(self, p: float) -> bool:
        return self._r.random() < p

    def shuffled(self, items: Sequence[str]) -> list[str]:
        out = list(items)
        for i in range(len(out) - 1, 0, -1):  # Fisher-Yates on random() only
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out


# -- road geometry -----------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    name: str
    cls: str
    geom: LineString  # metres
    closed: bool = False


def _catmull_rom(points: Sequence[tuple[float, float]], step_m: float = 40.0) -> LineString:
    """A smooth curve through the control points (centripetal Catmull-Rom).

    Passing *through* the points keeps hand-placed positions (such as 花园路 at
    the contract example) exactly where they were put; the centripetal variant
    neither loops nor overshoots where control points are unevenly spaced.
    """
    p = np.asarray(points, dtype=float)
    if len(p) == 2:
        return LineString(p)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = [p[0]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        t0 = 0.0
        t1 = t0 + math.sqrt(float(np.hypot(*(p1 - p0))))
        t2 = t1 + math.sqrt(float(np.hypot(*(p2 - p1))))
        t3 = t2 + math.sqrt(float(np.hypot(*(p3 - p2))))
        n = max(2, int(math.ceil(float(np.hypot(*(p2 - p1))) / step_m)))
        for t in np.linspace(t1, t2, n + 1)[1:]:
            a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
            a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
            a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
            b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
            b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
            out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    out[-1] = p[-1]  # exactly, so roads that continue each other touch
    # Straight runs need no intermediate vertices: 0.3 m keeps the curves' shape.
    return shapely.simplify(LineString(np.array(out)), 0.3)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 72) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in t]


def _major_lines() -> list[_Line]:
    lines = [
        _Line(name, cls, _catmull_rom([_to_xy(lon, lat) for lon, lat in pts]))
        for name, cls, pts in ROADS
    ]
    for n in range(1, JINGKAI_STREETS + 1):
        lon = JINGKAI_WEST + (n - 1) * JINGKAI_STEP
        # Odd-numbered streets run the zone's full depth, even ones only its core.
        # (just past 郑汴路 in the north; the stub is trimmed, leaving a T-junction)
        zhengbian = float(
            np.interp(lon, (113.7203, 113.7600, 113.8000), (34.7469, 34.7428, 34.7392))
        )
        lat_n, lat_s = (zhengbian + 0.0006, 34.6800) if n % 2 else (34.7277, 34.7100)
        skew = 0.0004 * (lat_n - lat_s) / 0.06  # the zone's grid is tilted ~1 degree
        pts = [
            _to_xy(lon + skew, lat_n),
            _to_xy(lon, (lat_n + lat_s) / 2),
            _to_xy(lon - skew, lat_s),
        ]
        lines.append(_Line(f"经开第{_cn_number(n)}大街", "secondary", _catmull_rom(pts)))
    cx, cy = _to_xy(*CBD_CENTRE)
    for name, r in CBD_RINGS:
        ring = _ellipse(cx, cy, r, r)
        lines.append(_Line(name, "secondary", LineString([*ring, ring[0]]), closed=True))
    r_in, r_out = CBD_RINGS[0][1], CBD_RINGS[1][1]
    for k, name in enumerate(CBD_RADIALS):
        # East streets at 22.5 deg + k*45 on the east side, west ones mirrored.
        ang = (
            math.radians(-67.5 + 45.0 * (k % 4)) if k < 4 else math.radians(112.5 + 45.0 * (k % 4))
        )
        ux, uy = math.cos(ang), math.sin(ang)
        lines.append(
            _Line(
                name,
                "secondary",
                LineString(
                    [
                        (cx + ux * (r_in - 5), cy + uy * (r_in - 5)),
                        (cx + ux * (r_out + 5), cy + uy * (r_out + 5)),
                    ]
                ),
            )
        )
    lx, ly = _to_xy(LAKES[1][0], LAKES[1][1])
    name, rx, ry = LONGHU_RING
    ring = _ellipse(lx, ly, rx, ry)
    lines.append(_Line(name, "secondary", LineString([*ring, ring[0]]), closed=True))
    return lines


def _end_direction(line: LineString, at_start: bool) -> tuple[np.ndarray, np.ndarray]:
    """The end point and the unit vector pointing out of the line there."""
    length = line.length
    d = min(30.0, length / 2)
    if at_start:
        end, inner = line.interpolate(0.0), line.interpolate(d)
    else:
        end, inner = line.interpolate(length), line.interpolate(length - d)
    e = np.array([end.x, end.y])
    v = e - np.array([inner.x, inner.y])
    return e, v / float(np.hypot(*v))


def _extend_ends(
    lines: list[_Line], forbidden: shapely.Geometry, max_m: float = 400.0, overshoot_m: float = 3.0
) -> None:
    """Carry each open road end on to the first road ahead of it.

    The table's end points are rounded positions; a road meant to end at another
    (a T-junction) must reach and cross it, or it would end in a gap. Roads that
    continue each other under a new name share an end point near the road they
    meet; touching there does not count, so both are carried across it. Ends
    that already cross a road within their last 60 m are left alone, and no end
    is carried into `forbidden`. The few metres of overshoot make a proper
    crossing; the stub is dropped when cutting.
    """
    geoms = [ln.geom for ln in lines]
    tree = shapely.STRtree(geoms)
    for i, ln in enumerate(lines):
        if ln.closed:
            continue
        g = ln.geom
        for at_start in (True, False):
            e, u = _end_direction(g, at_start)
            length = g.length
            tail = substring(g, 0.0, 60.0) if at_start else substring(g, length - 60.0, length)
            crossed = False
            for j in tree.query(tail, predicate="intersects"):
                if j == i:
                    continue
                pts = shapely.get_coordinates(tail.intersection(geoms[j]))
                if any(float(np.hypot(*(p - e))) > 1.0 for p in pts):
                    crossed = True
                    break
            if crossed:
                continue
            ray = LineString([e, e + u * max_m])
            best = None
            for j in tree.query(ray, predicate="intersects"):
                if j == i:
                    continue
                hit = ray.intersection(geoms[j])
                if not isinstance(hit, (Point, shapely.MultiPoint)):
                    continue  # runs along the ray: a continuation, not a crossing
                for p in shapely.get_coordinates(hit):
                    d = float(np.hypot(*(p - e)))
                    if d > 0.5 and (best is None or d < best):
                        best = d
            if best is None:
                continue
            new_end = e + u * (best + overshoot_m)
            if LineString([e, new_end]).intersects(forbidden):
                continue
            c = shapely.get_coordinates(g)
            c = np.vstack([new_end, c]) if at_start else np.vstack([c, new_end])
            g = LineString(c)
        ln.geom = g


# -- local streets -------------------------------------------------------------------


@dataclass(slots=True)
class _Stems:
    """Hands out unused two-character stems for generated street names."""

    pool: list[str]
    taken: set[str]
    i: int = 0

    def next(self) -> str:
        n = len(self.pool)
        while self.i < 3 * n:
            # Second and third rounds: "新康宁", "东康宁" (as cities name new quarters).
            stem = ("", "新", "东")[self.i // n] + self.pool[self.i % n]
            self.i += 1
            if stem not in self.taken:
                self.taken.add(stem)
                return stem
        raise RuntimeError("ran out of names for local streets")


def _face_axes(face: Polygon) -> tuple[np.ndarray, float, float, float]:
    """Centre, long-axis angle (radians), long and short size of a block."""
    rect = shapely.oriented_envelope(face)
    c = shapely.get_coordinates(rect)[:4]
    e1, e2 = c[1] - c[0], c[2] - c[1]
    l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    long_v, long_l, short_l = (e1, l1, l2) if l1 >= l2 else (e2, l2, l1)
    ang = math.atan2(float(long_v[1]), float(long_v[0]))
    centre = c.mean(axis=0)
    return centre, ang, long_l, short_l


# Blocks near the old centre (二七广场) get closer streets than the outskirts.
CITY_CENTRE: Final = (113.669, 34.754)


def _spacing_scale(p: np.ndarray) -> float:
    cx, cy = _to_xy(*CITY_CENTRE)
    r_km = math.hypot(float(p[0]) - cx, float(p[1]) - cy) / 1000.0
    return 0.75 + 0.05 * min(r_km, 12.0)


def _gaps(rng: _Rng, total: float, mean: float, edge: float) -> list[float]:
    """Irregular positions in (-total/2 + edge, total/2 - edge), `mean` apart on average."""
    out = []
    s = -total / 2 + edge + rng.uniform(0.2, 0.8) * mean
    while s < total / 2 - edge:
        out.append(s)
        s += mean * rng.uniform(0.65, 1.35)
    return out


def _street(rng: _Rng, p: np.ndarray, along: np.ndarray, half: float, bend: float) -> LineString:
    """A street through p in direction `along`, slightly turned and maybe bent."""
    turn = math.radians(rng.uniform(-4.0, 4.0))
    c, s = math.cos(turn), math.sin(turn)
    d = np.array([c * along[0] - s * along[1], s * along[0] + c * along[1]])
    n = np.array([-d[1], d[0]])
    if bend == 0.0:
        return LineString([p - d * half, p + d * half])
    # A gentle S or C curve: control points off the straight line by up to `bend` m.
    pts = [
        p - d * half,
        p - d * half / 3 + n * bend * rng.uniform(-1, 1),
        p + d * half / 3 + n * bend * rng.uniform(-1, 1),
        p + d * half,
    ]
    return _catmull_rom([(float(q[0]), float(q[1])) for q in pts], step_m=30.0)


def _locals_for_face(
    face: Polygon,
    area: shapely.Geometry,
    rng: _Rng,
    density: float,
    stems: _Stems,
    forbidden: shapely.Geometry,
) -> list[_Line]:
    """Local streets inside one block between major roads.

    Streets follow the block's own orientation (so they inherit the tilt of the
    roads around it, give or take a few degrees), cross it at irregular
    intervals, and run along it too when it is deep. Some are curved, some are
    missing, some stop half-way (dead ends) and some end at a cross street
    (T-junctions). `area` is the part of the block streets may use.
    """
    centre, ang, long_l, short_l = _face_axes(face)
    if short_l < 180.0 or face.area < 50_000.0:
        return []
    ang += math.radians(rng.uniform(-6.0, 6.0))
    u = np.array([math.cos(ang), math.sin(ang)])  # along the block's long side
    v = np.array([-u[1], u[0]])
    half = max(long_l, short_l)  # lines long enough to cross the whole block
    scale = _spacing_scale(centre) / density
    bend = 0.0 if rng.chance(0.6) else rng.uniform(15.0, 45.0)  # curvy blocks
    candidates: list[tuple[str, LineString]] = []  # kind ("街" across, "路" along), line

    cross_at = _gaps(rng, long_l, 600.0 * scale, 90.0)
    for s in cross_at:
        if rng.chance(0.12):
            continue  # a missing street makes a longer block
        candidates.append(("街", _street(rng, centre + u * s, v, half, bend)))
    for t in _gaps(rng, short_l, 840.0 * scale, 110.0):
        p = centre + v * t
        line = _street(rng, p, u, half, bend)
        if cross_at and rng.chance(0.3):
            # Stop 25 m past a cross street: the stub is cut off, leaving a T-junction.
            s = cross_at[rng.below(len(cross_at))]
            keep_low = rng.chance(0.5)  # the part before the cut, or after it
            at = p + u * (s + (25.0 if keep_low else -25.0))
            cut = LineString([at - v * half, at + v * half]).buffer(0.01)
            pieces = shapely.get_parts(shapely.difference(line, cut))
            if len(pieces) == 2:
                line = pieces[0] if keep_low else pieces[1]
        candidates.append(("路", line))

    streets: dict[str, list[LineString]] = {"街": [], "路": []}
    boundary = face.exterior
    for kind, line in candidates:
        clipped = line.intersection(area)
        for part in shapely.get_parts(clipped):
            if not isinstance(part, LineString) or part.length < 60.0:
                continue
            if part.intersects(forbidden):
                continue
            c = shapely.get_coordinates(part)
            # Ends on the block edge lie on a road's centre line: push them 2 m
            # across it so the crossing is found robustly.
            for idx, inward in ((0, c[1] - c[0]), (-1, c[-2] - c[-1])):
                if boundary.distance(Point(c[idx])) < 0.5:
                    c[idx] = c[idx] - inward / float(np.hypot(*inward)) * 2.0
            ln = LineString(c)
            if kind == "街" and rng.chance(0.12) and ln.length < 800.0:
                # Keep 45-70 % from one side: a cul-de-sac (short ones only).
                keep = rng.uniform(0.45, 0.7)
                if rng.chance(0.5):
                    ln = substring(ln, 0.0, ln.length * keep)
                else:
                    ln = substring(ln, ln.length * (1 - keep), ln.length)
            streets[kind].append(ln)
    if not streets["街"] and not streets["路"]:
        return []
    # Numbered after clipping, so a street cut in two by a lake gets two names.
    stem = stems.next()
    out: list[_Line] = []
    for k, ln in enumerate(streets["街"], start=1):
        out.append(_Line(f"{stem}{_cn_number(k)}街", "local", ln))
    n_long = len(streets["路"])
    for k, ln in enumerate(streets["路"], start=1):
        out.append(_Line(f"{stem}路" if n_long == 1 else f"{stem}{_cn_number(k)}路", "local", ln))
    return out


def _forbidden() -> shapely.Geometry:
    """Where no other street may meet the protected stretches (PROTECTED_ROADS)."""
    return shapely.union_all(
        [LineString([_to_xy(*a), _to_xy(*b)]).buffer(40.0) for _, a, b in PROTECTED_ROADS]
    )


def _local_lines(
    majors: list[_Line], frame: Polygon, rng: _Rng, density: float, taken: set[str]
) -> list[_Line]:
    edges = shapely.union_all([ln.geom for ln in majors] + [frame.exterior])
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(edges))))
    # A stable order that does not depend on GEOS's output order.
    faces.sort(key=lambda f: (round(f.centroid.y, 1), round(f.centroid.x, 1)))
    lakes = shapely.union_all(
        [Polygon(_ellipse(*_to_xy(lon, lat), rx, ry)) for lon, lat, rx, ry in LAKES]
    )
    # Locals keep 100 m off the extent's edge: the city goes on beyond, the demo not.
    usable = frame.buffer(-100.0).difference(lakes)
    forbidden = _forbidden()
    stems = _Stems(rng.shuffled([a + b for a in STEM_FIRST for b in STEM_SECOND if a != b]), taken)
    out: list[_Line] = []
    for face in faces:
        out.extend(
            _locals_for_face(face, face.intersection(usable), rng, density, stems, forbidden)
        )
    return out


# -- cutting roads into segments ----------------------------------------------------------


@dataclass(slots=True)
class _Piece:
    road: int  # index into the line list
    name: str
    cls: str
    start: float  # metres along the road
    end: float
    from_road: str
    to_road: str
    from_cls: int  # CLASS_RANK of the crossing road at each end (3: none)
    to_cls: int


@dataclass(slots=True)
class _Junction:
    at: float
    roads: set[int] = field(default_factory=set)


def _orient(line: _Line) -> None:
    """Digitise north-south roads from north to south and the rest from west to
    east, so "From至To" reads the way the city names its segments."""
    if line.closed:
        return
    c = shapely.get_coordinates(line.geom)
    dx, dy = c[-1] - c[0]
    if (abs(dy) > abs(dx) and dy > 0) or (abs(dy) <= abs(dx) and dx < 0):
        line.geom = LineString(c[::-1])


def _cluster(items: list[tuple[float, int]]) -> list[_Junction]:
    items.sort()
    clusters: list[_Junction] = []
    for d, other in items:
        if clusters and d - clusters[-1].at <= CLUSTER_M:
            clusters[-1].roads.add(other)
        else:
            clusters.append(_Junction(d, {other}))
    return clusters


def _junctions(lines: list[_Line]) -> tuple[list[list[_Junction]], list[list[_Junction]]]:
    """Per road, the junctions it is cut at, and all its junctions, along it."""
    geoms = np.array([ln.geom for ln in lines], dtype=object)
    tree = shapely.STRtree(geoms)
    i_idx, j_idx = tree.query(geoms, predicate="intersects")
    keep = i_idx < j_idx
    i_idx, j_idx = i_idx[keep], j_idx[keep]
    inter = shapely.intersection(geoms[i_idx], geoms[j_idx])
    # Major roads are cut only where another major road meets them: a lane opening
    # onto 花园路 does not end a 花园路 segment (nor does it in the city's own
    # lists). Local streets are cut at every junction, and so are ring roads and a
    # major road that no other major road meets.
    found_all: list[list[tuple[float, int]]] = [[] for _ in lines]
    found_major: list[list[tuple[float, int]]] = [[] for _ in lines]
    for i, j, g in zip(i_idx.tolist(), j_idx.tolist(), inter, strict=True):
        for x, y in shapely.get_coordinates(g):
            p = Point(x, y)
            di, dj = lines[i].geom.project(p), lines[j].geom.project(p)
            found_all[i].append((di, j))
            found_all[j].append((dj, i))
            if lines[j].cls != "local":
                found_major[i].append((di, j))
            if lines[i].cls != "local":
                found_major[j].append((dj, i))
    found = [
        fa if ln.cls == "local" or ln.closed or not fm else fm
        for ln, fa, fm in zip(lines, found_all, found_major, strict=True)
    ]
    return [_cluster(f) for f in found], [_cluster(f) for f in found_all]


def _junction_name(lines: list[_Line], road: int, j: _Junction) -> tuple[str, int]:
    """The road a junction is named after: a crossing one rather than a road that
    merely continues this one, then the most important, the squarest, by name."""
    here = lines[road].geom
    p = here.interpolate(j.at)

    def key(other: int) -> tuple[bool, int, float, str]:
        g = lines[other].geom
        d = g.project(p)
        a, b = g.interpolate(max(d - 10.0, 0.0)), g.interpolate(min(d + 10.0, g.length))
        c, e = (
            here.interpolate(max(j.at - 10.0, 0.0)),
            here.interpolate(min(j.at + 10.0, here.length)),
        )
        v1 = np.array([b.x - a.x, b.y - a.y])
        v2 = np.array([e.x - c.x, e.y - c.y])
        n1, n2 = float(np.hypot(*v1)), float(np.hypot(*v2))
        cross = float(v1[0] * v2[1] - v1[1] * v2[0])
        sin = abs(cross) / (n1 * n2) if n1 > 0 and n2 > 0 else 1.0
        same = lines[other].name == lines[road].name
        return (sin < 0.3 or same, CLASS_RANK[lines[other].cls], -round(sin, 1), lines[other].name)

    best = min(j.roads, key=key)
    return lines[best].name, CLASS_RANK[lines[best].cls]


def _edge_name(pt: Point, frame: Polygon) -> str | None:
    """The ring road beyond the extent edge that a road end touches, if any."""
    x0, y0, x1, y1 = frame.bounds
    d = {"W": pt.x - x0, "E": x1 - pt.x, "S": pt.y - y0, "N": y1 - pt.y}
    side = min(d, key=lambda s: d[s])
    return EDGE_ROADS[side] if d[side] < 1.0 else None


def _free_end(
    lines: list[_Line], r: int, ends: list[_Junction], frame: Polygon, *, at_start: bool
) -> tuple[str, int, bool]:
    """Name and class of a road end beyond its outermost cut, and whether it is a
    real end (a street meets it, or the extent edge) rather than a dead end."""
    length = lines[r].geom.length
    if ends and at_start and ends[0].at < CLUSTER_M:
        return (*_junction_name(lines, r, ends[0]), True)
    if ends and not at_start and length - ends[-1].at < CLUSTER_M:
        return (*_junction_name(lines, r, ends[-1]), True)
    edge = _edge_name(lines[r].geom.interpolate(0.0 if at_start else length), frame)
    return (edge, 3, True) if edge is not None else (DEAD_END, 3, False)


def _split_long(cuts: list[_Junction], extra: list[_Junction], length: float) -> list[_Junction]:
    """Add junctions from `extra` (local streets) where a major road would
    otherwise run more than MAX_SEGMENT_M between cuts: one chief cannot patrol
    6 km of 北三环 daily. The junction nearest the middle of a long stretch is
    taken, then the halves are looked at again."""

    def fill(a: float, b: float) -> list[_Junction]:
        if b - a <= MAX_SEGMENT_M:
            return []
        inside = [j for j in extra if a + 2 * MIN_SEGMENT_M < j.at < b - 2 * MIN_SEGMENT_M]
        if not inside:
            return []
        mid = min(inside, key=lambda j: (abs(j.at - (a + b) / 2), j.at))
        return [*fill(a, mid.at), mid, *fill(mid.at, b)]

    bounds = [0.0, *(j.at for j in cuts), length]
    added = [j for a, b in zip(bounds, bounds[1:], strict=False) for j in fill(a, b)]
    return sorted([*cuts, *added], key=lambda j: j.at) if added else cuts


def _cut(lines: list[_Line], frame: Polygon) -> list[list[_Piece]]:
    """Cut every road at its junctions into named pieces, in order along the road."""
    juncs, all_juncs = _junctions(lines)
    result: list[list[_Piece]] = []
    for r, ln in enumerate(lines):
        js = juncs[r]
        if not js:
            result.append([])
            continue
        length = ln.geom.length
        if not ln.closed and ln.cls != "local":
            js = _split_long(js, all_juncs[r], length)
        names = [_junction_name(lines, r, j) for j in js]
        pieces: list[_Piece] = []
        if ln.closed:
            # A ring: pieces between consecutive junctions, the last one wrapping round.
            for k in range(len(js)):
                a, b = js[k].at, js[(k + 1) % len(js)].at
                if k == len(js) - 1:
                    b += length
                pieces.append(
                    _Piece(
                        r,
                        ln.name,
                        ln.cls,
                        a,
                        b,
                        names[k][0],
                        names[(k + 1) % len(js)][0],
                        names[k][1],
                        names[(k + 1) % len(js)][1],
                    )
                )
            result.append(pieces)
            continue
        tail_min = LOCAL_TAIL_M if ln.cls == "local" else MAJOR_TAIL_M

        head = js[0].at
        if head > 1.0:
            name, cls, real = _free_end(lines, r, all_juncs[r], frame, at_start=True)
            if head >= (MIN_SEGMENT_M if real else tail_min):
                pieces.append(
                    _Piece(r, ln.name, ln.cls, 0.0, head, name, names[0][0], cls, names[0][1])
                )
        for k in range(len(js) - 1):
            pieces.append(
                _Piece(
                    r,
                    ln.name,
                    ln.cls,
                    js[k].at,
                    js[k + 1].at,
                    names[k][0],
                    names[k + 1][0],
                    names[k][1],
                    names[k + 1][1],
                )
            )
        tail = length - js[-1].at
        if tail > 1.0:
            name, cls, real = _free_end(lines, r, all_juncs[r], frame, at_start=False)
            if tail >= (MIN_SEGMENT_M if real else tail_min):
                pieces.append(
                    _Piece(
                        r, ln.name, ln.cls, js[-1].at, length, names[-1][0], name, names[-1][1], cls
                    )
                )
        result.append(pieces)
    return result


def _trim_major_tails(lines: list[_Line], frame: Polygon) -> None:
    """Cut each major road back to its outermost crossings where it runs on past
    them by less than MAJOR_TAIL_M: the table's rounded ends overshoot a little.

    Done before local streets are laid out, so none of them meets a cut-off stub.
    A 2 m overshoot is left so the crossing stays a proper one.
    """
    juncs, _ = _junctions(lines)
    for r, ln in enumerate(lines):
        js = juncs[r]
        if ln.closed or not js:
            continue
        g = ln.geom
        length = g.length
        a, b = 0.0, length
        first, last = js[0].at, js[-1].at
        if 2.5 < first < MAJOR_TAIL_M and _edge_name(g.interpolate(0.0), frame) is None:
            a = first - 2.0
        if 2.5 < length - last < MAJOR_TAIL_M and _edge_name(g.interpolate(length), frame) is None:
            b = last + 2.0
        if a > 0.0 or b < length:
            ln.geom = substring(g, a, b)


def _merge(a: _Piece, b: _Piece) -> _Piece:
    return _Piece(
        a.road, a.name, a.cls, a.start, b.end, a.from_road, b.to_road, a.from_cls, b.to_cls
    )


def _merge_short(pieces: list[_Piece]) -> list[_Piece]:
    """Merge pieces shorter than MIN_SEGMENT_M into a neighbour on the same road.

    The neighbour chosen is the one across the least important junction, so a
    short piece swallows a lane crossing rather than an arterial one.
    """
    ps = list(pieces)
    while len(ps) > 1:
        lengths = [p.end - p.start for p in ps]
        k = min(range(len(ps)), key=lambda i: lengths[i])
        if lengths[k] >= MIN_SEGMENT_M:
            break
        if (k == 0 and ps[k].from_road == DEAD_END) or (
            k == len(ps) - 1 and ps[k].to_road == DEAD_END
        ):
            del ps[k]  # a short dead end is simply left out
            continue
        options = []
        if k > 0 and ps[k - 1].end == ps[k].start:
            options.append((-ps[k].from_cls, lengths[k - 1], k - 1))
        if k < len(ps) - 1 and ps[k].end == ps[k + 1].start:
            options.append((-ps[k].to_cls, lengths[k + 1], k))
        if not options:
            del ps[k]
            continue
        _, _, i = min(options)
        ps[i : i + 2] = [_merge(ps[i], ps[i + 1])]
    if len(ps) == 1 and ps[0].end - ps[0].start < MIN_SEGMENT_M:
        return []
    return ps


def _segment_pieces(lines: list[_Line], frame: Polygon) -> list[list[_Piece]]:
    """Cut and merge; drop roads that end up too short to be a segment, then redo
    the cut so no name refers to a dropped road."""
    for _ in range(4):
        cut = [_merge_short(ps) for ps in _cut(lines, frame)]
        keep = [bool(ps) for ps in cut]
        if all(keep):
            return cut
        lines[:] = [ln for ln, k in zip(lines, keep, strict=True) if k]
    return [_merge_short(ps) for ps in _cut(lines, frame)]


def _trim_to_target(per_road: list[list[_Piece]], target: int) -> None:
    """Merge adjacent local pieces, shortest pair first, until `target` remain.

    Only junctions with other local streets are merged away, so arterial and
    secondary segments (and the contract example) never change.
    """
    total = sum(len(ps) for ps in per_road)
    while total > target:
        best: tuple[float, int, int] | None = None
        for r, ps in enumerate(per_road):
            for k in range(len(ps) - 1):
                a, b = ps[k], ps[k + 1]
                if a.cls != "local" or a.to_cls != CLASS_RANK["local"] or a.end != b.start:
                    continue
                if a.from_road == b.to_road:
                    continue  # would read "X（尽头至尽头）" or "X（Y至Y）"
                cost = b.end - a.start
                if best is None or cost < best[0]:
                    best = (cost, r, k)
        if best is None:
            raise RuntimeError(f"cannot merge down to {target} segments (have {total})")
        _, r, k = best
        ps = per_road[r]
        ps[k : k + 2] = [_merge(ps[k], ps[k + 1])]
        total -= 1


# -- districts, sub-districts, people ----------------------------------------------------


def _district_polygons(frame: Polygon) -> dict[str, shapely.Geometry]:
    seeds: list[tuple[float, float]] = []
    owner: list[str] = []
    for code, _, _, _, pts in DISTRICTS:
        for lon, lat in pts:
            seeds.append(_to_xy(lon, lat))
            owner.append(code)
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, ordered=True)
    by_code: dict[str, list[shapely.Geometry]] = defaultdict(list)
    for code, cell in zip(owner, shapely.get_parts(cells), strict=True):
        by_code[code].append(cell.intersection(frame))
    return {code: shapely.normalize(shapely.union_all(parts)) for code, parts in by_code.items()}


def _person_names(rng: _Rng) -> Iterator[str]:
    seen: set[str] = set()
    while True:
        if rng.chance(0.5):
            surname = SURNAMES[rng.below(SURNAME_HEAD)]
        else:
            surname = SURNAMES[rng.below(len(SURNAMES))]
        given = GIVEN[rng.below(len(GIVEN))]
        if rng.chance(0.7):
            given += GIVEN[rng.below(len(GIVEN))]
        name = surname + given
        if name not in seen:
            seen.add(name)
            yield name


# -- the generator -------------------------------------------------------------------


def generate_demo_network(
    seed: int = DEFAULT_SEED, target_segments: int = DEFAULT_SEGMENTS
) -> Network:
    """The demo network of central Zhengzhou with exactly `target_segments` segments.

    Deterministic: the same arguments give the same network, and save_network
    writes the same bytes.
    """
    if target_segments < 1:
        raise ValueError(f"target_segments must be positive, not {target_segments}")
    x0, y0 = _to_xy(EXTENT[0], EXTENT[1])
    x1, y1 = _to_xy(EXTENT[2], EXTENT[3])
    frame = box(x0, y0, x1, y1)

    majors = _major_lines()
    _extend_ends(majors, _forbidden())
    clipped: list[_Line] = []
    for ln in majors:
        g = ln.geom.intersection(frame)
        for part in getattr(g, "geoms", [g]):
            if isinstance(part, LineString) and part.length > 1.0:
                clipped.append(_Line(ln.name, ln.cls, part, ln.closed and part.is_ring))
    majors = clipped
    _trim_major_tails(majors, frame)
    taken = {ln.name[:2] for ln in majors}

    # Tune the density of local streets until there are a few more pieces than
    # wanted, then merge local pieces down to the exact count. Pure arithmetic on
    # the counts, so the search itself is deterministic too.
    density = 1.0
    total = 0
    for _attempt in range(16):
        rng = _Rng(seed)
        lines = majors + _local_lines(majors, frame, rng, density, set(taken))
        for ln in lines:
            _orient(ln)
        per_road = _segment_pieces(lines, frame)
        total = sum(len(ps) for ps in per_road)
        if target_segments <= total <= target_segments * 1.05:
            break
        local_now = sum(len(ps) for ps in per_road if ps and ps[0].cls == "local")
        local_want = target_segments * 1.02 - (total - local_now)
        if local_want <= 0:
            raise ValueError(
                f"{target_segments} segments is fewer than the major roads need "
                f"(they alone make {total - local_now}; ask for more)"
            )
        # Local pieces grow roughly with density**1.4 (more streets, each cut more often).
        density *= (local_want / max(local_now, 1)) ** (1 / 1.4)
    if total < target_segments:
        raise RuntimeError(f"could not reach {target_segments} segments (got {total})")
    _trim_to_target(per_road, target_segments)

    net = _assemble(lines, per_road, frame, _Rng(seed + 1))
    if len(net.segments) != target_segments:  # the contract of this function
        raise RuntimeError(f"made {len(net.segments)} segments, not {target_segments}")
    _check_contract_example(net)
    return net


def _check_contract_example(net: Network) -> None:
    """The API contract acknowledges its example report with this segment; a
    change to the road table that breaks that must not go unnoticed."""
    road, a, b = CONTRACT_SEGMENT
    name = f"{road}（{a}至{b}）"
    point = Point(_to_xy(*CONTRACT_POINT))
    for s in net.segments:
        if s.name == name and s.district == CONTRACT_DISTRICT:
            xy = shapely.transform(
                s.geometry, lambda c: (c - [_LON0, _LAT0]) * [M_PER_DEG_LON, M_PER_DEG_LAT]
            )
            if xy.distance(point) < 15.0:
                return
    raise RuntimeError(f"the contract example point is no longer on {name} in {CONTRACT_DISTRICT}")


@dataclass(slots=True)
class _Row:
    """A finished piece on its way to becoming a Segment."""

    road_key: tuple[int, str, int]  # class rank, name, index of the road line
    position: int  # along the road
    follows_prev: bool  # starts where the previous piece of the road ends
    piece: _Piece
    geom: LineString  # WGS84, rounded
    district: str = ""
    subdistrict: str = ""


def _assemble(
    lines: list[_Line], per_road: list[list[_Piece]], frame: Polygon, rng: _Rng
) -> Network:
    geod = Geod(ellps="WGS84")
    # Districts are assigned on the final, rounded coordinates: exactly what a
    # reader of the file sees, so "midpoint inside its district" holds there too.
    district_ll = {code: _geom_to_lonlat(poly) for code, poly in _district_polygons(frame).items()}
    for poly in district_ll.values():
        shapely.prepare(poly)

    rows: list[_Row] = []
    for r, ps in enumerate(per_road):
        ln = lines[r]
        for pos, p in enumerate(ps):
            g = ln.geom
            if p.end > g.length:  # a ring piece that wraps round the start
                ring = shapely.get_coordinates(g)
                g = LineString(np.vstack([ring[:-1], ring]))  # twice round
            follows = pos > 0 and ps[pos - 1].end == p.start
            geom = _geom_to_lonlat(substring(g, p.start, p.end))
            rows.append(_Row((CLASS_RANK[ln.cls], ln.name, r), pos, follows, p, geom))

    offices: dict[str, list[tuple[str, tuple[float, float]]]] = {}
    subdistricts: list[Subdistrict] = []
    for code, *_ in DISTRICTS:
        offices[code] = []
        for k, (name, lon, lat) in enumerate(SUBDISTRICTS[code], start=1):
            sub = Subdistrict(code=f"{code}-{k:02d}", name=name, district=code)
            subdistricts.append(sub)
            offices[code].append((sub.code, _to_xy(lon, lat)))
    for row in rows:
        mid = row.geom.interpolate(0.5, normalized=True)
        covering = [code for code, poly in district_ll.items() if poly.covers(mid)]
        # On a shared border the first district in table order takes it.
        row.district = (
            covering[0]
            if covering
            else min(district_ll, key=lambda c: district_ll[c].distance(mid))
        )
        # Sub-district: the nearest office point of the segment's district.
        mx, my = _to_xy(mid.x, mid.y)
        row.subdistrict = min(
            offices[row.district], key=lambda e: (e[1][0] - mx) ** 2 + (e[1][1] - my) ** 2
        )[0]

    # Stable ids: by district, then road (class, name, instance), then position.
    district_order = {code: i for i, (code, *_) in enumerate(DISTRICTS)}
    rows.sort(key=lambda rw: (district_order[rw.district], rw.road_key, rw.position))
    counters: dict[str, int] = defaultdict(int)
    segments: list[Segment] = []
    for row in rows:
        counters[row.district] += 1
        p = row.piece
        segments.append(
            Segment(
                id=f"ZZ-{row.district}-{counters[row.district]:04d}",
                name=f"{p.name}（{p.from_road}至{p.to_road}）",
                road=p.name,
                from_road=p.from_road,
                to_road=p.to_road,
                district=row.district,
                subdistrict=row.subdistrict,
                road_class=p.cls,
                length_m=round(abs(geod.geometry_length(row.geom)), 1),
                geometry=row.geom,
            )
        )

    districts = tuple(
        District(code=code, name=name, kind=kind, pinyin=py, geometry=district_ll[code])
        for code, name, kind, py, _ in DISTRICTS
    )
    people, assignments = _chiefs(districts, subdistricts, segments, rows, rng)
    return Network(
        name="郑州市中心城区路长制责任路段（演示数据）",
        districts=districts,
        subdistricts=tuple(subdistricts),
        segments=tuple(segments),
        people=tuple(people),
        assignments=tuple(assignments),
    )


def _chiefs(
    districts: Sequence[District],
    subdistricts: Sequence[Subdistrict],
    segments: Sequence[Segment],
    rows: Sequence[_Row],
    rng: _Rng,
) -> tuple[list[Person], list[Assignment]]:
    """The chiefs of every level and one assignment per segment and level."""
    names = _person_names(rng)
    people: list[Person] = []
    head: dict[str, str] = {}
    first: dict[str, str] = {}  # sub-district code -> its 一级路长
    second: dict[str, str] = {}  # sub-district code -> its 二级路长
    counter: dict[str, int] = defaultdict(int)

    def new_person(d: District, level: int, sub: str | None, title: str) -> str:
        counter[d.code] += 1
        pid = f"zz-{d.pinyin}-{counter[d.code]:04d}"
        people.append(Person(pid, next(names), level, d.code, sub, title))
        return pid

    for d in districts:
        zone = d.kind == "zone"
        head[d.code] = new_person(d, 0, None, f"{d.name}管委会主任" if zone else f"{d.name}区长")
        subs = [s for s in subdistricts if s.district == d.code]
        i = 0
        while i < len(subs):
            group = subs[i : i + 1 + rng.below(3)]  # one 一级路长 over 1-3 offices
            pid = new_person(d, 1, None, f"{d.name}管委会副主任" if zone else f"{d.name}副区长")
            for s in group:
                first[s.code] = pid
            i += len(group)
        for s in subs:
            second[s.code] = new_person(d, 2, s.code, f"{s.name}办事处主任")

    by_code = {d.code: d for d in districts}
    assignments: list[Assignment] = []
    third: str | None = None
    held = 0
    for k, seg in enumerate(segments):
        prev_adjacent = (
            k > 0
            and rows[k].follows_prev
            and rows[k - 1].road_key == rows[k].road_key
            and rows[k - 1].position + 1 == rows[k].position
            and segments[k - 1].subdistrict == seg.subdistrict
        )
        # A 路段长 holds one segment, or two adjacent ones on the same road.
        if third is None or held >= 2 or not prev_adjacent or not rng.chance(0.35):
            third = new_person(by_code[seg.district], 3, seg.subdistrict, "路段长")
            held = 0
        held += 1
        for level, pid in enumerate(
            (head[seg.district], first[seg.subdistrict], second[seg.subdistrict], third)
        ):
            assignments.append(Assignment(seg.id, pid, level, "road_chief", VALID_FROM, None))
    return people, assignments


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m geo.demo OUT_PATH   (e.g. geo/data/zhengzhou_demo.geojson.gz)")
        return 2
    t0 = time.perf_counter()
    net = generate_demo_network()
    save_network(net, args[0])
    print(f"wrote {args[0]} in {time.perf_counter() - t0:.1f} s")
    for key, value in net.info().items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
