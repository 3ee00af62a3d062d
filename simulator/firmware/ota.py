"""Firmware and web-UI uploads (``POST /api/system/OTA``, ``/api/system/OTAWWW``) as ESP-Miner
answers them, without ever changing the simulated unit's firmware.

A real unit streams an OTA upload into ``esp_ota_write``, which refuses a first byte other
than the image magic 0xE9 (ESP-IDF ``esp_ota_ops.c``), then ``esp_ota_end`` verifies the
image. The simulator cannot flash anything, so every upload takes the release's path for an
image that does not verify: a wrong magic gets the write error, anything else the validation
error. A web-UI upload is written raw into the ``www`` SPIFFS partition, with no check beyond
its size; the simulator reads it and keeps nothing. Per release (``http_server.c``):

* v2.1.8: errors through ``httpd_resp_send_err`` (500, ``text/html``): ``Flash Error``,
  ``Validation / Activation Error``; OTAWWW answers ``WWW update complete\\n`` and does not
  restart.
* v2.15.0: errors as ``{"message": ...}`` JSON (``HTTP_send_json_error``): ``Write Error``,
  ``Validation / Activation Error``; OTAWWW refuses more than the 3 MB ``www`` partition
  (``partitions.csv``) with 400 ``File provided is too large for device``, else answers
  ``WWW update complete, rebooting now!\\n``, sets ``useCustomWWW`` and restarts a second
  later. The restarted unit still serves its built-in page: v2.15.0 serves the partition
  only when SPIFFS mounts it (``filesystem_is_available``), and the simulator never mounts
  an upload -- as a real unit behaves when the upload is not a SPIFFS image.
"""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from asic_reservoir.simulator.firmware.esp_httpd import json_message, send_err

IMAGE_MAGIC = 0xE9                     # ESP_IMAGE_HEADER_MAGIC
WWW_PARTITION_BYTES = 3 * 1024 * 1024  # partitions.csv at v2.15.0: www, data, spiffs, 3M
CHUNK = 1000                           # the handlers' receive buffer


async def _first_and_drain(request: web.Request) -> bytes:
    """The first receive buffer of the body; the rest is read and dropped."""
    first = await request.content.read(CHUNK)
    while await request.content.read(64 * 1024):
        pass
    return first


class UploadsV218:
    """v2.1.8's OTA / OTAWWW handlers."""

    async def ota(self, request: web.Request) -> web.Response:
        first = await _first_and_drain(request)
        if first and first[0] != IMAGE_MAGIC:
            return send_err(500, "Flash Error")
        return send_err(500, "Validation / Activation Error")

    async def www(self, request: web.Request) -> web.Response:
        await _first_and_drain(request)
        return web.Response(text="WWW update complete\n", content_type="text/html")


class UploadsV215:
    """v2.15.0's OTA / OTAWWW handlers; ``nvs`` is the release's settings (``useCustomWWW``)."""

    def __init__(self, restart_soon: Callable[[], None], nvs: dict[str, Any]) -> None:
        self.restart_soon = restart_soon
        self.nvs = nvs

    async def ota(self, request: web.Request) -> web.Response:
        first = await _first_and_drain(request)
        if first and first[0] != IMAGE_MAGIC:
            return json_message("Write Error", 500)
        return json_message("Validation / Activation Error", 500)

    async def www(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > WWW_PARTITION_BYTES:
            return json_message("File provided is too large for device", 400)
        await _first_and_drain(request)
        self.nvs["useCustomWWW"] = 1
        self.restart_soon()
        return web.Response(body=b"WWW update complete, rebooting now!\n",
                            headers={"Content-Type": "text/plain"})   # httpd_resp_set_type
