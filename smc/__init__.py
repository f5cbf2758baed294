"""smc-decode: sample language-model outputs from p(x)·Φ(x) by Sequential Monte Carlo.

    lm = smc.load_model()                       # embedded SmolLM2-135M-Instruct, offline
    res = smc.generate(lm, prompt, constraint=potentials.LarkGrammar(g), method="smc")
    res.posterior, res.log_ml, res.best
"""

from smc import domains
from smc.generate import METHODS, PROPOSALS, RESAMPLERS, STEPS, generate
from smc.hf_lm import HFLanguageModel
from smc.lm import BatchState, FunctionLM, LanguageModel
from smc.models import load_model
from smc.result import Particle, Result

__all__ = [
    "METHODS",
    "PROPOSALS",
    "RESAMPLERS",
    "STEPS",
    "BatchState",
    "FunctionLM",
    "HFLanguageModel",
    "LanguageModel",
    "Particle",
    "Result",
    "domains",
    "generate",
    "load_model",
]
__version__ = "0.1.0"
