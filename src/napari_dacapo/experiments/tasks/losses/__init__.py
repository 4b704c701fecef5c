from .hot_distance_loss import HotDistanceLoss
from .mse_loss import MSELoss
from .affinities_loss import AffinitiesLoss
from .cross_entropy_loss import CrossEntropyLoss
from .dummy_loss import DummyLoss
