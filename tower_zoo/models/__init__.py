"""Built-in models; importing this package registers them by name."""

from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.cold import Cold, ColdConfig
from tower_zoo.models.dat import DATConfig, DualAugmentedTwoTower
from tower_zoo.models.dssm import DSSM, DSSMConfig
from tower_zoo.models.gnolr import GNOLR, GNOLRConfig
from tower_zoo.models.mvke import MVKE, MVKEConfig
from tower_zoo.models.long_retriever import LongRetriever, LongRetrieverConfig
from tower_zoo.models.hit import HierarchicalInteractionTwoTower, HITConfig
from tower_zoo.models.int_tower import IntTower, IntTowerConfig
from tower_zoo.models.logistic_regression import LogisticRegression, LogisticRegressionConfig
from tower_zoo.models.mf import MatrixFactorization, MFConfig
from tower_zoo.models.poly_encoder import PolyEncoder, PolyEncoderConfig
from tower_zoo.models.rq_target_attention import RQTargetAttention, RQTargetAttentionConfig
from tower_zoo.models.target_attention import TargetAttentionConfig, TargetAttentionTeacher
from tower_zoo.models.multi_objective import MultiObjectiveConfig, MultiObjectiveModel
from tower_zoo.models.three_tower import ThreeTower, ThreeTowerConfig

__all__ = ["LongRetriever", "LongRetrieverConfig", "MVKE", "MVKEConfig", "GNOLR", "GNOLRConfig", "Cold", "ColdConfig", "ThreeTower", "ThreeTowerConfig", "TwoTowerConfig", "TwoTowerModel", "DATConfig", "DualAugmentedTwoTower", "DSSM", "DSSMConfig", "HierarchicalInteractionTwoTower", "HITConfig", "IntTower", "IntTowerConfig", "LogisticRegression", "LogisticRegressionConfig", "MatrixFactorization", "MFConfig",
           "MultiObjectiveConfig", "MultiObjectiveModel", "PolyEncoder", "PolyEncoderConfig",
           "RQTargetAttention", "RQTargetAttentionConfig", "TargetAttentionConfig", "TargetAttentionTeacher"]
