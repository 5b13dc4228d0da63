"""The code MLflow runs to build the click predictor's pyfunc model when it loads one (models from code).

Saved with the model by `mktlab.models.lstm.serving.save_pyfunc`; the class lives in that module.
"""

from mlflow.models import set_model

from mktlab.models.lstm.serving import ClickLSTMModel

set_model(ClickLSTMModel())
