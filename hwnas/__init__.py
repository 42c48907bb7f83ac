"""hwnas: hardware-aware neural architecture search.

Measure layer latency once on the target device (``hwnas.profile``), turn the tables into
predictors (``hwnas.predictors``), and search architectures under a latency budget with no
device in the loop (``hwnas.search``).
"""

from hwnas.layers import Layer
from hwnas.predictors import LookupPredictor, Predictor, load_predictor
from hwnas.search import search
from hwnas.spaces import Architecture, SearchSpace, get_space
from hwnas.tables import read_layer_table, read_network_table

__version__ = "0.1.0"

__all__ = ["Architecture", "Layer", "LookupPredictor", "Predictor", "SearchSpace",
           "get_space", "load_predictor", "read_layer_table", "read_network_table", "search"]
