"""Hub failures are one line saying what failed: the token, the repo id or branch, the connection (the server stopped,
or dying in the middle of a transfer). The real huggingface_hub client against the test suite's Hub server; a
server "dies" by being stopped, or through ``DyingProxy`` in front of it at a chosen moment."""
import os
import socket
import subprocess
import sys
import threading

import pytest

import segzoo
from segzoo import WeightsUnavailableError, create_model, push_to_hub
from segzoo.tools.cli import main
from segzoo.weights.hub import HubError

ALICE, BOB = "hf_test_alice", "hf_test_bob"
TINY = "fcn_test_resnet.r160_in1k"  # timm's test ResNet: a 1.6 MB model


class DyingProxy:
    """A TCP proxy in front of a server that dies as a crashed server would (every connection closed, nothing
    listening any more, so retries are refused) once ``answer_bytes`` bytes of answers have passed, or when a request
    containing ``request_marker`` arrives."""

    def __init__(self, server_endpoint: str, answer_bytes: int = 1 << 62, request_marker: bytes = b"\0 never"):
        self.target_port = int(server_endpoint.rsplit(":", 1)[1])
        self.answer_bytes, self.request_marker = answer_bytes, request_marker
        self.passed = 0
        self.dead = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed: dead
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool):
        try:
            while data := source.recv(1 << 16):
                with self._lock:
                    self.passed += len(data) if answers else 0
                    dies = self.passed >= self.answer_bytes or (not answers and self.request_marker in data)
                if dies:
                    return self.die()
                sink.sendall(data)
        except OSError:
            pass

    def die(self):
        self.dead.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def tiny():
    return create_model(TINY, num_classes=3)


def one_line(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def assert_one_error_line(stderr: str, start: str) -> None:
    """The command's stderr ends in one ``error:`` line; before it at most huggingface_hub's progress bars, not its
    log of retries, not a traceback."""
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith(start), stderr
    assert all(line.endswith("/s]") for line in lines[:-1]), stderr


def test_push_with_a_wrong_token_no_token_or_no_write_access(hub_server, hub_env, tiny):
    endpoint = hub_server.endpoint
    with pytest.raises(HubError, match=rf"pushing to Hub repo alice/x: the Hub at {endpoint} refused the token "
                                       r"\(401 Unauthorized: Invalid credentials.*\); check --token") as err:
        push_to_hub(tiny, "alice/x", token="hf_wrong", endpoint=endpoint)
    one_line(err.value)
    with pytest.raises(HubError, match=r"alice/x: the Hub at .* needs a token \(401 Unauthorized.*\); pass --token "
                                       r"/ token=, set HF_TOKEN or log in") as err:
        push_to_hub(tiny, "alice/x", endpoint=endpoint)
    one_line(err.value)
    with pytest.raises(HubError, match=r"bob/x: the Hub at .* does not allow this with the token given "
                                       r"\(403 Forbidden: You don't have the rights .* namespace 'bob'") as err:
        push_to_hub(tiny, "bob/x", token=ALICE, endpoint=endpoint)
    one_line(err.value)
    with pytest.raises(HubError, match=r"answered 400 Bad Request: Invalid branch name") as err:
        push_to_hub(tiny, "alice/x", revision="my branch", token=ALICE, endpoint=endpoint)
    one_line(err.value)


def test_pull_with_a_wrong_token(hub_server, hub_env, tiny):
    push_to_hub(tiny, "alice/public", token=ALICE, endpoint=hub_server.endpoint)
    with pytest.raises(WeightsUnavailableError, match=r"downloading config.json of alice/public: the Hub at .* "
                                                      r"refused the token \(401 Unauthorized") as err:
        create_model("hf-hub:alice/public", token="hf_wrong", endpoint=hub_server.endpoint)
    one_line(err.value)


@pytest.mark.parametrize("repo_id, message", [
    ("not a repo", r"Hub repo id must be 'namespace/name\[@revision\]', got 'not a repo'"),
    ("justname", r"Hub repo id must be 'namespace/name\[@revision\]', got 'justname'"),
    ("alice/my model", r"Hub repo id 'alice/my model' is not valid: Repo id must use alphanumeric chars"),
])
def test_invalid_repo_ids_are_refused_before_any_request(hub_server, hub_env, tiny, repo_id, message):
    with pytest.raises(HubError, match=message) as err:
        push_to_hub(tiny, repo_id, token=ALICE, endpoint=hub_server.endpoint)
    one_line(err.value)
    with pytest.raises(WeightsUnavailableError, match=message):
        segzoo.download_model_files(repo_id, token=ALICE, endpoint=hub_server.endpoint)
    assert hub_server.request_log == []  # the server received nothing...
    with pytest.raises(WeightsUnavailableError, match="not found"):
        segzoo.download_model_files("alice/absent", token=ALICE, endpoint=hub_server.endpoint)
    assert hub_server.request_log  # ...and it logs what it receives: a valid id's request is there


# huggingface_hub waits 1, 2, 4, 8 and 8 s between the 5 retries of a failed request (http_backoff's base_wait_time
# and max_wait_time): the tests that retry to no one keep the 5 retries and wait 10 ms between them.
FAST_BACKOFF = {"base_wait_time": 0.01, "max_wait_time": 0.01}
# `python -m segzoo` with FAST_BACKOFF
FAST_BACKOFF_SEGZOO = ("import inspect, runpy\nfrom huggingface_hub.utils import _http\n"
                       "for backoff in (_http.http_backoff, inspect.unwrap(_http.http_stream_backoff)):\n"
                       f"    backoff.__kwdefaults__.update({FAST_BACKOFF!r})\n"
                       "runpy.run_module('segzoo', run_name='__main__')\n")


@pytest.fixture
def fast_backoff(monkeypatch):
    """FAST_BACKOFF in this process."""
    import inspect

    from huggingface_hub.utils import _http

    for backoff in (_http.http_backoff, inspect.unwrap(_http.http_stream_backoff)):  # the latter: a contextmanager
        for argument, seconds in FAST_BACKOFF.items():
            monkeypatch.setitem(backoff.__kwdefaults__, argument, seconds)


def _segzoo(*args: str, fast_backoff: bool = False) -> subprocess.Popen:
    command = ["-c", FAST_BACKOFF_SEGZOO] if fast_backoff else ["-m", "segzoo"]
    return subprocess.Popen([sys.executable, *command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "HF_HUB_DISABLE_XET": "1"})


def test_stopped_server(hub_server, hub_env, tiny, fast_backoff):
    """Push and pull say the connection failed, after how many retries (not "offline, or local_files_only=True");
    the command's stderr is that one line, without huggingface_hub's line per retry."""
    push_to_hub(tiny, "alice/model", token=ALICE, endpoint=hub_server.endpoint)
    endpoint = hub_server.endpoint
    hub_server.stop()
    with pytest.raises(HubError, match=rf"pushing to Hub repo alice/model: the connection to {endpoint} failed: "
                                       r".*Connection refused") as err:
        push_to_hub(tiny, "alice/model", token=ALICE, endpoint=endpoint)
    one_line(err.value)
    # huggingface_hub retries a download 5 times (~23 s, 50 ms with FAST_BACKOFF): the commands retry at the same
    # time as the function
    commands = {"pull": _segzoo("pull", "alice/model", "--token", ALICE, "--endpoint", endpoint, fast_backoff=True),
                "info": _segzoo("info", "hf-hub:alice/model", "--token", ALICE, "--endpoint", endpoint,
                                fast_backoff=True)}
    expected = rf"downloading config.json of alice/model: the connection to {endpoint} failed after 5 retries"
    with pytest.raises(WeightsUnavailableError, match=expected + r" \(\d+ s\): .*refused") as err:
        create_model("hf-hub:alice/model", token=ALICE, endpoint=endpoint)
    assert "local_files_only" not in one_line(err.value)
    for name, process in commands.items():
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, (name, stderr)
        assert_one_error_line(stderr, f"error: downloading config.json of alice/model: the connection to {endpoint} "
                                      f"failed after 5 retries")


def test_server_dying_during_a_pull(hub_server, hub_env, fast_backoff):
    """The server goes away 1 MiB into the 47 MB weights; huggingface_hub resumes 5 times, to no one. Nothing broken
    stays in the cache: the next pull from a live server works."""
    model = create_model("fcn_resnet18", num_classes=3)
    push_to_hub(model, "alice/big", token=ALICE, endpoint=hub_server.endpoint)
    proxy = DyingProxy(hub_server.endpoint, answer_bytes=1 << 20)
    with pytest.raises(WeightsUnavailableError, match=rf"downloading model.safetensors of alice/big: the connection "
                                                      rf"to {proxy.endpoint} failed after \d+ retries") as err:
        create_model("hf-hub:alice/big", token=ALICE, endpoint=proxy.endpoint)
    one_line(err.value)
    assert proxy.dead.is_set()
    pulled = create_model("hf-hub:alice/big", token=ALICE, endpoint=hub_server.endpoint)
    assert all((a == b).all() for a, b in zip(pulled.state_dict().values(), model.state_dict().values()))


@pytest.mark.slow  # a variant of the server dying during a pull, in the default tier
def test_server_dying_during_a_push(hub_server, hub_env, tiny, tmp_path):
    """The server goes away as the commit arrives (the weights were uploaded): the function and the command."""
    proxy = DyingProxy(hub_server.endpoint, request_marker=b"/commit/")
    with pytest.raises(HubError, match=rf"pushing to Hub repo alice/tiny: the connection to {proxy.endpoint} "
                                       rf"failed") as err:
        push_to_hub(tiny, "alice/tiny", token=ALICE, endpoint=proxy.endpoint)
    one_line(err.value)
    assert proxy.dead.is_set()
    segzoo.save_pretrained(tiny, tmp_path / "tiny")
    proxy = DyingProxy(hub_server.endpoint, request_marker=b"/commit/")
    command = _segzoo("push", str(tmp_path / "tiny"), "alice/tiny", "--token", ALICE, "--endpoint", proxy.endpoint)
    _, stderr = command.communicate(timeout=120)
    assert command.returncode == 1, stderr
    assert_one_error_line(stderr, f"error: pushing to Hub repo alice/tiny: the connection to {proxy.endpoint} failed")


def test_local_files_only_says_so(hub_server, hub_env):
    with pytest.raises(WeightsUnavailableError, match=r"config.json of alice/never is not in the local cache and "
                                                      r"downloads are off \(local_files_only=True\)"):
        create_model("hf-hub:alice/never", endpoint=hub_server.endpoint, local_files_only=True)


PLUGIN_CONFIG = segzoo.ModelConfig(head="tinyplug", backbone="resnet18", num_classes=3, provenance={
    "head_distribution": "tiny-plug-heads", "head_version": "1.2", "segzoo_version": segzoo.__version__})


def test_pull_and_info_of_a_model_whose_plugin_is_missing_name_the_package(hub_server, hub_env, tmp_path, capsys):
    hub_server.seed("alice/plug", {"config.json": PLUGIN_CONFIG.to_json().encode(), "model.safetensors": b"0" * 64})
    common = ["--token", ALICE, "--endpoint", hub_server.endpoint]
    hint = "pip install 'tiny-plug-heads==1.2'"
    assert main(["pull", "alice/plug", "--to", str(tmp_path / "copy"), *common]) == 0  # the files are there
    assert capsys.readouterr().err.startswith("warning: This model's head 'tinyplug' comes from the plug-in package")
    assert main(["pull", "alice/plug", *common]) == 0
    assert hint in capsys.readouterr().err
    assert main(["info", "hf-hub:alice/plug", *common]) == 1
    assert capsys.readouterr().err.strip().endswith(hint)
    assert main(["info", f"local-dir:{tmp_path / 'copy'}"]) == 1
    assert capsys.readouterr().err.strip().endswith(hint)


def test_pull_to_copies_config_and_weights_not_the_card(hub_server, hub_env, tiny, tmp_path):
    """As --help says: the model card stays in the cache, even when it was downloaded there."""
    from huggingface_hub import hf_hub_download

    push_to_hub(tiny, "alice/carded", token=ALICE, endpoint=hub_server.endpoint)
    hf_hub_download("alice/carded", "README.md", token=ALICE, endpoint=hub_server.endpoint)  # the card is cached
    assert main(["pull", "alice/carded", "--to", str(tmp_path / "copy"), "--token", ALICE,
                 "--endpoint", hub_server.endpoint]) == 0
    assert sorted(path.name for path in (tmp_path / "copy").iterdir()) == ["config.json", "model.safetensors"]
    from segzoo.tools.cli import _build_parser

    pull = _build_parser()._subparsers._group_actions[0].choices["pull"]
    help_text = " ".join(pull.format_help().split())
    assert "--to DIR copy config.json and model.safetensors (not the model card)" in help_text


# A host name that never resolves (RFC 2606): what every Hub request meets on a machine without a network.
NO_NETWORK = "http://segzoo-no-network.invalid"


def test_without_a_network_the_first_failure_ends_a_download(hub_env):
    """huggingface_hub retried for ~23 s per file before the error; with no network no retry can help."""
    import time

    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match=rf"downloading config.json of alice/model: no network to reach "
                                                      rf"{NO_NETWORK} \(.*\): download the weights where there is one "
                                                      rf"\(segzoo pull NAME\) and copy the Hugging Face cache") as err:
        create_model("hf-hub:alice/model", endpoint=NO_NETWORK)
    assert "retries" not in one_line(err.value)
    assert time.monotonic() - start < 10


def test_pretrained_backbone_without_a_network_fails_at_once(hub_env, tmp_path):
    """finetune.py --pretrained-backbone offline printed 22 lines of retries over ~50 s before its error."""
    import time

    code = ("import segzoo\ntry:\n    segzoo.create_model('fcn_resnet18', pretrained_backbone=True)\n"
            "except segzoo.WeightsUnavailableError as err:\n    print(err)\n")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_ENDPOINT": NO_NETWORK})
    assert time.monotonic() - start < 20 and "Retrying" not in out.stderr, out.stderr
    assert out.stdout.startswith("Could not load ImageNet weights for backbone 'resnet18': no network to download "
                                 "timm's 'resnet18.gluon_in1k' from the Hugging Face Hub"), out
    assert "copy the Hugging Face cache (HF_HUB_CACHE) here, or build without pretrained_backbone" in out.stdout


def test_pull_to_a_folder_holding_a_model_is_refused_unless_overwrite_which_replaces_it_whole(
        hub_server, hub_env, tiny, tmp_path, capsys):
    """`pull --to DIR` copied over a model DIR held, file by file, without a word."""
    common = ["--token", ALICE, "--endpoint", hub_server.endpoint]
    push_to_hub(tiny, "alice/new", token=ALICE, endpoint=hub_server.endpoint)
    old = tmp_path / "old"
    segzoo.save_pretrained(create_model(TINY, num_classes=2), old)
    (old / "notes.txt").write_text("mine")
    before = {path.name: path.read_bytes() for path in old.iterdir()}
    capsys.readouterr()  # the push's progress bars
    requests = len(hub_server.request_log)
    assert main(["pull", "alice/new", "--to", str(old), *common]) == 1
    assert capsys.readouterr().err == (f"error: {old} holds a model already (config.json / model.safetensors); pass "
                                       f"--overwrite to replace it, or choose another --to DIR\n")
    assert len(hub_server.request_log) == requests  # refused before anything was asked of the Hub
    assert {path.name: path.read_bytes() for path in old.iterdir()} == before
    assert main(["pull", "alice/new", "--to", str(old), "--overwrite", *common]) == 0
    assert create_model(f"local-dir:{old}").config.num_classes == tiny.config.num_classes
    assert (old / "notes.txt").read_text() == "mine"  # the folder's other files are kept
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]
