"""The code MLflow runs to build the click predictor's pyfunc model when it loads one (models from code).

Saved with the model by `mktlab.tracking.pyfunc_lstm.save_pyfunc`; the class lives in that module.
"""

from mlflow.models import set_model

from mktlab.tracking.pyfunc_lstm import ClickLSTMModel

set_model(ClickLSTMModel())
