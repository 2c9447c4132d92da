"""Typed keys for what the aiohttp application carries."""

from aiohttp import web

from hubbub.core.admission import Admission
from hubbub.core.api_keys import ApiKeys
from hubbub.core.origins import OriginPolicy
from hubbub.server.node import Node

NODE = web.AppKey("node", Node)
ADMISSION = web.AppKey("admission", Admission)
ORIGINS = web.AppKey("origins", OriginPolicy)
API_KEYS = web.AppKey("api_keys", ApiKeys)
