// The jigsaw solver page: picks a model, makes or uploads a scrambled puzzle, shows the solution
// and the soft permutation S(X/τ) of the stored scores. Plain browser JavaScript, no build step.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const elements = {
    model: $("model"), modelFacts: $("model-facts"), sample: $("sample"), sampleFacts: $("sample-facts"), sampleLabel: $("sample-label"),
    drop: $("drop"), file: $("file"), board: $("board"), boardCaption: $("board-caption"), thumb: $("thumb"), solve: $("solve"), reset: $("reset"),
    status: $("status"), result: $("result"), permutation: $("permutation"), verdict: $("verdict"),
    pieceRows: $("piece-rows"), tau: $("tau"), tauValue: $("tau-value"), softImage: $("soft-image"),
    heatmap: $("heatmap"), softStatus: $("soft-status"), error: $("error"), errorTitle: $("error-title"),
    errorMessage: $("error-message"), errorClose: $("error-close"),
  };
  const params = new URLSearchParams(location.search);

  /** Everything the page knows; `puzzle` is the one on the board. */
  const state = {
    models: [],
    modelName: null,
    datasets: [],
    puzzle: null,
    solved: false,
    soft: { inFlight: false, pending: null, objectURL: null, sequence: 0 },
  };

  /** An error answered by the service (or the network), with a message a person can read. */
  class ServiceFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Fetches from the service; throws a ServiceFailure carrying its JSON error when not 2xx. */
  async function request(path, options = {}, as = "json") {
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      throw new ServiceFailure(0, "network", "The service could not be reached (" + error.message + ").");
    }
    if (!response.ok) {
      let code = "http_" + response.status, message = response.statusText || "request failed";
      try {
        const body = await response.json();
        if (body && body.error) {
          code = body.error.code || code;
          message = body.error.message || message;
        }
      } catch (_) {
        // A non-JSON error body: keep the status line.
      }
      throw new ServiceFailure(response.status, code, message);
    }
    return as === "blob" ? response.blob() : response.json();
  }

  // MARK: - Messages

  function showError(title, error, prefix = "") {
    let message = error && error.message ? error.message : String(error);
    message = message.charAt(0).toUpperCase() + message.slice(1);
    if (error instanceof ServiceFailure && error.status) message += " (HTTP " + error.status + ", " + error.code + ")";
    message = prefix + message;
    elements.errorTitle.textContent = title;
    elements.errorMessage.textContent = message;
    elements.error.hidden = false;
    document.body.dataset.error = error && error.code ? error.code : "error";
    setStatus("Error", "error");
  }

  function clearError() {
    elements.error.hidden = true;
    delete document.body.dataset.error;
  }

  function setStatus(text, kind = "") {
    elements.status.textContent = text;
    elements.status.dataset.kind = kind;
  }

  function setBusy(busy) {
    document.body.classList.toggle("busy", busy);
    elements.sample.disabled = busy || !state.modelName;
    elements.solve.disabled = busy || !state.puzzle || state.solved;
  }

  // MARK: - Models

  function currentModel() {
    return state.models.find((model) => model.name === state.modelName) || null;
  }

  function percent(value) {
    return (100 * value).toFixed(value < 0.01 ? 2 : 1) + " %";
  }

  function describeModel(model) {
    if (!model) return "This model is not loaded by the service.";
    const configuration = model.configuration || {}, evaluation = model.evaluation || {};
    const parts = [];
    if (configuration.grid) {
      parts.push(configuration.grid + "×" + configuration.grid + " grid (" + configuration.grid * configuration.grid + " pieces of "
        + (configuration.piece_size || "?") + " px)");
    }
    parts.push(model.parameters.toLocaleString("en") + " parameters");
    let facts = parts.join(" · ");
    if (typeof evaluation.kendall_tau === "number") {
      facts += ". On " + (evaluation.puzzles ? Number(evaluation.puzzles).toLocaleString("en") + " " : "")
        + (evaluation.dataset || "") + " " + (evaluation.split || "test") + " puzzles: Kendall τ "
        + evaluation.kendall_tau.toFixed(3);
      if (typeof evaluation.prop_wrong === "number") facts += ", " + percent(evaluation.prop_wrong) + " of pieces misplaced";
      if (typeof evaluation.prop_any_wrong === "number") facts += ", " + percent(evaluation.prop_any_wrong) + " of puzzles with an error";
      facts += ".";
      if (typeof evaluation.equal_terms_prop_wrong === "number" && evaluation.equal_terms_prop_wrong !== evaluation.prop_wrong) {
        facts += " Counting identical pieces as interchangeable: " + percent(evaluation.equal_terms_prop_wrong)
          + " of pieces misplaced, " + percent(evaluation.equal_terms_prop_any_wrong) + " of puzzles with an error.";
      }
    } else {
      facts += ". No evaluation figures in this model file.";
    }
    return facts;
  }

  function modelGrid() {
    const model = currentModel();
    return model && model.configuration && model.configuration.grid ? Number(model.configuration.grid) : 3;
  }

  function sampleDataset() {
    const model = currentModel();
    const wanted = model && model.evaluation && model.evaluation.dataset;
    return state.datasets.find((d) => d.name === wanted) || state.datasets.find((d) => d.name === "mnist") || state.datasets[0] || null;
  }

  async function loadModels() {
    try {
      const [models, samples] = await Promise.all([request("/v1/models"), request("/v1/samples")]);
      state.models = models.models.filter((model) => model.kind === "jigsaw");
      state.datasets = samples.datasets || [];
      const names = state.models.map((model) => model.name);
      const asked = params.get("model");
      if (asked && !names.includes(asked)) names.push(asked);
      state.modelName = asked || models.default_model || names[0] || null;
      elements.model.replaceChildren(...names.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        const model = state.models.find((m) => m.name === name);
        option.textContent = model ? name + (model.is_default ? " (default)" : "") : name + " (not loaded)";
        return option;
      }));
      if (!state.modelName) {
        elements.model.replaceChildren(new Option("no jigsaw model loaded"));
        setStatus("No model", "error");
        showError("No jigsaw model is loaded", new Error("Start the server with --models DIR holding a jigsaw model."));
        return;
      }
      elements.model.value = state.modelName;
      elements.model.disabled = false;
      elements.modelFacts.textContent = describeModel(currentModel());
      setStatus("Ready");
      document.body.dataset.state = "ready";
      setBusy(false);
      updateSampleFacts();
      const sample = params.get("sample");
      if (sample !== null) await loadSample(Number(sample));
    } catch (error) {
      showError("Could not load the models", error);
    }
  }

  function updateSampleFacts() {
    const dataset = sampleDataset();
    const photos = dataset && dataset.channels === 3;
    elements.sampleLabel.textContent = photos ? "Test-set photo" : "Test-set digit";
    elements.sampleFacts.textContent = dataset
      ? "One of " + dataset.count + " " + dataset.name + " test " + (photos ? "photos" : "images")
        + " shipped with the server (never seen in training), cut into the model's grid and shuffled."
      : "No sample images are installed on the server.";
  }

  // MARK: - Puzzles

  /** Loads a PNG (data URL) into an HTMLImageElement. */
  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the image could not be displayed"));
      image.src = url;
    });
  }

  /** Cuts the scrambled image into grid × grid piece images (data URLs), row-major. */
  function cut(image, grid) {
    const width = Math.floor(image.naturalWidth / grid), height = Math.floor(image.naturalHeight / grid);
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    const pieces = [];
    for (let row = 0; row < grid; row++) {
      for (let column = 0; column < grid; column++) {
        context.clearRect(0, 0, width, height);
        context.drawImage(image, column * width, row * height, width, height, 0, 0, width, height);
        pieces.push(canvas.toDataURL("image/png"));
      }
    }
    return { pieces, width, height };
  }

  /** Puts a new scrambled puzzle on the board. */
  async function showPuzzle(puzzle) {
    const image = await loadImage(puzzle.scrambledURL);
    const { pieces, width, height } = cut(image, puzzle.grid);
    state.puzzle = puzzle;
    state.solved = false;
    state.soft.pending = null;
    const board = elements.board;
    board.classList.remove("empty", "solved");
    board.classList.toggle("pixelated", width < 64);
    board.style.aspectRatio = width + " / " + height;
    board.style.setProperty("--grid", puzzle.grid);
    board.replaceChildren();
    elements.thumb.src = puzzle.scrambledURL;
    elements.thumb.hidden = false;
    elements.thumb.classList.toggle("pixelated", width < 64);
    puzzle.elements = pieces.map((url, slot) => {
      const piece = document.createElement("div");
      piece.className = "piece";
      piece.dataset.slot = slot;
      const img = document.createElement("img");
      img.src = url;
      img.alt = "Scrambled piece " + slot;
      img.draggable = false;
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = slot;
      badge.setAttribute("aria-hidden", "true");
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.setAttribute("aria-hidden", "true");
      piece.append(img, badge, chip);
      place(piece, slot, puzzle.grid);
      board.append(piece);
      return piece;
    });
    elements.result.hidden = true;
    elements.reset.disabled = true;
    elements.reset.textContent = "Show scrambled";
    elements.softImage.hidden = true;
    elements.softImage.alt = "Soft reconstruction: solve the puzzle first";
    elements.heatmap.replaceChildren();
    elements.softStatus.textContent = "";
    elements.tau.disabled = true;
    elements.boardCaption.textContent = "Scrambled: the numbers name the pieces in their scrambled order.";
    document.body.dataset.state = "scrambled";
    setBusy(false);
  }

  /** Empties the board (the puzzle on it belongs to another model). */
  function clearPuzzle(caption) {
    if (!state.puzzle) return;
    state.puzzle = null;
    state.solved = false;
    state.soft.pending = null;
    const placeholder = document.createElement("p");
    placeholder.className = "placeholder";
    placeholder.textContent = "No puzzle yet";
    elements.board.className = "board empty";
    elements.board.style.aspectRatio = "";
    elements.board.replaceChildren(placeholder);
    elements.thumb.hidden = true;
    elements.boardCaption.textContent = caption;
    elements.result.hidden = true;
    elements.reset.disabled = true;
    elements.softImage.hidden = true;
    elements.heatmap.replaceChildren();
    elements.softStatus.textContent = "";
    elements.tau.disabled = true;
    document.body.dataset.state = "ready";
    setBusy(false);
  }

  function place(piece, cell, grid) {
    piece.style.left = (100 * (cell % grid)) / grid + "%";
    piece.style.top = (100 * Math.floor(cell / grid)) / grid + "%";
  }

  async function loadSample(index) {
    if (!state.modelName) return;
    clearError();
    setBusy(true);
    setStatus("Fetching a sample…", "busy");
    try {
      const dataset = sampleDataset();
      if (!Number.isInteger(index) || index < 0) index = Math.floor(Math.random() * (dataset ? dataset.count : 100));
      const query = new URLSearchParams({ model: state.modelName });
      if (dataset) query.set("dataset", dataset.name);
      const body = await request("/v1/samples/" + index + "?" + query);
      await showPuzzle({
        id: body.id, grid: body.grid, scrambledURL: "data:image/png;base64," + body.scrambled, truth: body.truth,
        solution: { id: body.id, permutation: body.permutation, confidence: body.confidence },
      });
      const label = body.sample && body.sample.label !== undefined && body.sample.label !== null ? " (a " + body.sample.label + ")" : "";
      elements.sampleFacts.textContent = "Test image #" + body.sample.index + " of " + body.sample.dataset + label
        + ", shuffled with seed " + body.sample.seed + ".";
      setStatus("Scrambled: press Solve");
      elements.solve.focus({ preventScroll: true });
    } catch (error) {
      setBusy(false);
      showError("Could not make a sample puzzle", error);
    }
  }

  /** Converts a browser-readable image that is not a PNG to PNG bytes (at most 1024 px a side). */
  async function convertToPNG(file) {
    const url = URL.createObjectURL(file);
    try {
      const image = await loadImage(url);
      const scale = Math.min(1, 1024 / Math.max(image.naturalWidth, image.naturalHeight));
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
      canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
      canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
      return await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  function megabytes(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1) + " MiB";
  }

  /** Converts a browser-readable image to JPEG bytes at most `side` px a side (large phone photos). */
  async function shrinkToJPEG(file, side) {
    const url = URL.createObjectURL(file);
    try {
      const image = await loadImage(url);
      const scale = Math.min(1, side / Math.max(image.naturalWidth, image.naturalHeight));
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
      canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
      canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
      return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  function isColourModel(model) {
    return !!(model && model.configuration && Number(model.configuration.channels) === 3);
  }

  /** A photo goes to a photo model: the one of the current grid, else the 3×3 one, else any. */
  function photoModelFor(grid) {
    const photo = state.models.filter(isColourModel);
    const byGrid = (g) => photo.find((m) => Number(m.configuration.grid) === g);
    return byGrid(grid) || byGrid(3) || photo[0] || null;
  }

  function selectModel(name) {
    state.modelName = name;
    elements.model.value = name;
    elements.modelFacts.textContent = describeModel(currentModel());
    updateSampleFacts();
  }

  async function loadFile(file) {
    if (!file || !state.modelName) return;
    clearError();
    setBusy(true);
    setStatus("Scrambling your image…", "busy");
    try {
      let body = file, note = "";
      const direct = ["image/png", "image/jpeg", "image/webp"].includes(file.type);
      if (file.type && file.type.startsWith("image/") && (!direct || file.size > 8 * 1024 * 1024)) {
        // The service reads PNG, JPEG and WebP up to its body limit; anything else the browser can
        // decode (HEIC on a phone, GIF, BMP) and very large photos are re-encoded here, and what the
        // browser cannot decode goes as is, so the service's own message explains what is wrong.
        body = (direct ? await shrinkToJPEG(file, 2048).catch(() => null) : await convertToPNG(file).catch(() => null)) || file;
      }
      const looksLikePhoto = file.type && file.type !== "image/png" && file.type.startsWith("image/");
      if (looksLikePhoto && !isColourModel(currentModel())) {
        const photo = photoModelFor(modelGrid());
        if (photo) {
          note = " Switched to " + photo.name + ", trained on photos (" + state.modelName + " knows only digits).";
          selectModel(photo.name);
        }
      }
      const grid = modelGrid();
      let scrambled;
      try {
        scrambled = await request("/v1/scramble?grid=" + grid, {
          method: "POST", headers: { "Content-Type": body.type || "application/octet-stream" }, body,
        });
      } catch (error) {
        if (error instanceof ServiceFailure && error.status === 0) {
          // A server that refuses a body over its limit closes the connection while the browser
          // is still sending, which the browser reports as a network error.
          throw new ServiceFailure(0, "upload_failed", "The upload of " + file.name + " (" + megabytes(body.size)
            + ") was cut off by the service; it refuses bodies over its size limit (10 MiB by default). " + error.message);
        }
        throw error;
      }
      const bytes = Uint8Array.from(atob(scrambled.image), (c) => c.charCodeAt(0));
      await showPuzzle({
        id: null, grid, scrambledURL: "data:image/png;base64," + scrambled.image, truth: scrambled.permutation,
        scrambledPNG: new Blob([bytes], { type: "image/png" }), solution: null,
      });
      elements.sampleFacts.textContent = "Your image " + file.name + ", " + scrambled.width + "×" + scrambled.height
        + " px, cut into " + grid + "×" + grid + " and shuffled with seed " + scrambled.seed + "." + note;
      setStatus("Scrambled: press Solve");
      elements.solve.focus({ preventScroll: true });
    } catch (error) {
      setBusy(false);
      const title = error.code === "invalid_image" || error.code === "unsupported_media_type"
        ? "That file is not an image the service can read"
        : error.status === 413 || error.code === "upload_failed" ? "That image is too large" : "Could not use that file";
      const prefix = error.code === "content_too_large" ? file.name + " (" + megabytes(file.size) + "): "
        : error.status === 413 ? file.name + ": " : "";
      showError(title, error, prefix);
    }
  }

  async function solve() {
    const puzzle = state.puzzle;
    if (!puzzle || state.solved) return;
    clearError();
    setBusy(true);
    setStatus("Solving…", "busy");
    document.body.dataset.state = "solving";
    try {
      if (!puzzle.solution) {
        const body = await request("/v1/solve?model=" + encodeURIComponent(state.modelName), {
          method: "POST", headers: { "Content-Type": "image/png" }, body: puzzle.scrambledPNG,
        });
        puzzle.solution = { id: body.id, permutation: body.permutation, confidence: body.confidence };
        puzzle.id = body.id;
        if (body.warnings && body.warnings.length) elements.sampleFacts.textContent += " Note: " + body.warnings.join(" ");
      }
      state.solved = true;
      animateSolution();
      showResult();
      elements.tau.disabled = false;
      elements.reset.disabled = false;
      document.body.dataset.state = "solved";
      setStatus("Solved", "ok");
      requestSoft();
    } catch (error) {
      document.body.dataset.state = "scrambled";
      showError("Could not solve the puzzle", error);
    } finally {
      setBusy(false);
    }
  }

  function formatPercent(value) {
    return (100 * value).toFixed(1) + " %";
  }

  function confidenceColor(value) {
    // Red (uncertain) through amber to green (certain).
    const hue = Math.round(120 * Math.max(0, Math.min(1, value)));
    return "hsl(" + hue + " 70% 45%)";
  }

  function animateSolution() {
    const puzzle = state.puzzle, { permutation, confidence } = puzzle.solution;
    elements.board.classList.add("solved");
    puzzle.elements.forEach((piece, slot) => {
      piece.style.transitionDelay = slot * 60 + "ms";
      place(piece, permutation[slot], puzzle.grid);
      const chip = piece.querySelector(".chip");
      chip.textContent = formatPercent(confidence[slot]);
      chip.style.background = confidenceColor(confidence[slot]);
      const wrong = puzzle.truth && puzzle.truth[slot] !== permutation[slot];
      piece.classList.toggle("wrong", Boolean(wrong));
      piece.querySelector("img").alt = "Piece " + slot + " placed in cell " + permutation[slot]
        + ", confidence " + Math.round(100 * confidence[slot]) + " %" + (wrong ? ", misplaced" : "");
    });
  }

  function solvedCaption() {
    return "Solved: piece s moved to cell π[s] (cells numbered row by row), with the network's confidence.";
  }

  function showResult() {
    elements.boardCaption.textContent = solvedCaption();
    const puzzle = state.puzzle, { permutation, confidence } = puzzle.solution;
    elements.permutation.textContent = "[" + permutation.join(", ") + "]";
    elements.permutation.dataset.permutation = permutation.join(",");
    elements.permutation.dataset.puzzle = puzzle.solution.id;
    if (puzzle.truth) {
      const right = permutation.filter((cell, slot) => cell === puzzle.truth[slot]).length;
      elements.verdict.textContent = right === permutation.length ? "✓ all pieces right" : right + " of " + permutation.length + " pieces right";
      elements.verdict.dataset.kind = right === permutation.length ? "ok" : "warn";
    } else {
      elements.verdict.textContent = "";
    }
    elements.pieceRows.replaceChildren(...permutation.map((cell, slot) => {
      const row = document.createElement("tr");
      const value = confidence[slot];
      const wrong = puzzle.truth && puzzle.truth[slot] !== cell;
      row.innerHTML = "<th scope=\"row\"></th><td></td><td><span class=\"meter\"><span></span></span> <span class=\"num\"></span></td>";
      row.children[0].textContent = slot;
      row.children[1].textContent = cell + (wrong ? " (should be " + puzzle.truth[slot] + ")" : "");
      const meter = row.querySelector(".meter span");
      meter.style.width = 100 * value + "%";
      meter.style.background = confidenceColor(value);
      row.querySelector(".num").textContent = formatPercent(value);
      if (wrong) row.className = "wrong";
      return row;
    }));
    elements.result.hidden = false;
  }

  function toggleView() {
    const puzzle = state.puzzle;
    if (!puzzle || !puzzle.solution) return;
    const showingSolved = elements.board.classList.toggle("solved");
    puzzle.elements.forEach((piece, slot) => {
      piece.style.transitionDelay = slot * 40 + "ms";
      place(piece, showingSolved ? puzzle.solution.permutation[slot] : slot, puzzle.grid);
    });
    elements.reset.textContent = showingSolved ? "Show scrambled" : "Show solved";
    elements.boardCaption.textContent = showingSolved ? solvedCaption() : "Scrambled: the numbers name the pieces in their scrambled order.";
  }

  // MARK: - Soft permutation

  function currentTau() {
    return Math.pow(10, Number(elements.tau.value));
  }

  function formatTau(tau) {
    return tau < 0.1 ? tau.toFixed(3) : tau < 10 ? tau.toFixed(2) : tau.toFixed(1);
  }

  /** Asks for the soft reconstruction at the slider's τ, one request at a time (the newest wins). */
  function requestSoft() {
    const tau = currentTau();
    elements.tauValue.textContent = formatTau(tau);
    elements.tau.setAttribute("aria-valuetext", "tau " + formatTau(tau));
    if (!state.solved) return;
    const soft = state.soft;
    soft.pending = tau;
    if (!soft.inFlight) fetchSoft();
  }

  async function fetchSoft() {
    const soft = state.soft, puzzle = state.puzzle;
    const tau = soft.pending;
    soft.pending = null;
    soft.inFlight = true;
    const base = "/v1/puzzles/" + encodeURIComponent(puzzle.solution.id) + "/soft?tau=" + tau.toPrecision(6);
    try {
      const [image, body] = await Promise.all([request(base, {}, "blob"), request(base + "&format=json")]);
      if (state.puzzle !== puzzle) return;
      const url = URL.createObjectURL(image);
      await new Promise((resolve) => {
        elements.softImage.onload = elements.softImage.onerror = resolve;
        elements.softImage.src = url;
      });
      if (soft.objectURL) URL.revokeObjectURL(soft.objectURL);
      soft.objectURL = url;
      elements.softImage.hidden = false;
      elements.softImage.alt = "Soft reconstruction of the puzzle at tau " + formatTau(tau);
      elements.softImage.dataset.tau = String(tau);
      drawHeatmap(body.soft.matrix, puzzle.solution.permutation, tau);
      soft.sequence += 1;
      document.body.dataset.softSequence = String(soft.sequence);
      elements.softStatus.textContent = "τ = " + formatTau(tau) + ", " + body.soft.iterations + " Sinkhorn iterations, row-sum error "
        + body.soft.row_marginal_error.toExponential(1) + ".";
      elements.softStatus.dataset.kind = "";
    } catch (error) {
      elements.softStatus.textContent = "No soft matrix at τ = " + formatTau(tau) + ": " + error.message
        + (error.status ? " (HTTP " + error.status + ", " + error.code + ")" : "");
      elements.softStatus.dataset.kind = "error";
    } finally {
      soft.inFlight = false;
      if (soft.pending !== null && state.solved) fetchSoft();
    }
  }

  function heatColor(value) {
    // White → indigo; the text turns white on dark cells.
    const v = Math.max(0, Math.min(1, value));
    const from = [246, 247, 252], to = [55, 48, 163];
    return "rgb(" + from.map((c, k) => Math.round(c + (to[k] - c) * Math.sqrt(v))).join(",") + ")";
  }

  function drawHeatmap(matrix, permutation, tau) {
    const n = matrix.length, table = elements.heatmap;
    table.style.setProperty("--n", n);
    table.setAttribute("aria-label", "Doubly-stochastic matrix at tau " + formatTau(tau));
    const head = document.createElement("tr");
    head.append(document.createElement("td"));
    for (let j = 0; j < n; j++) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = j;
      th.title = "cell " + j;
      head.append(th);
    }
    const rows = matrix.map((values, i) => {
      const row = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = i;
      th.title = "piece " + i;
      row.append(th);
      values.forEach((value, j) => {
        const td = document.createElement("td");
        td.style.background = heatColor(value);
        if (value > 0.45) td.className = "dark";
        if (permutation[i] === j) td.classList.add("chosen");
        td.textContent = n <= 9 ? (value >= 0.995 ? "1" : value.toFixed(2).replace(/^0/, "")) : "";
        td.title = "piece " + i + " → cell " + j + ": " + value.toFixed(4);
        row.append(td);
      });
      return row;
    });
    table.replaceChildren(head, ...rows);
  }

  // MARK: - Wiring

  function pickFile() {
    elements.file.value = "";
    elements.file.click();
  }

  elements.model.addEventListener("change", () => {
    state.modelName = elements.model.value;
    elements.modelFacts.textContent = describeModel(currentModel());
    updateSampleFacts();
    clearPuzzle("Model changed: scramble a sample or drop an image for " + state.modelName + ".");
  });
  elements.sample.addEventListener("click", () => loadSample(-1));
  elements.solve.addEventListener("click", solve);
  elements.reset.addEventListener("click", toggleView);
  elements.tau.addEventListener("input", requestSoft);
  elements.errorClose.addEventListener("click", clearError);
  elements.file.addEventListener("change", () => loadFile(elements.file.files[0]));
  elements.drop.addEventListener("click", pickFile);
  elements.drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      pickFile();
    }
  });
  for (const name of ["dragenter", "dragover"]) {
    elements.drop.addEventListener(name, (event) => {
      event.preventDefault();
      elements.drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    elements.drop.addEventListener(name, () => elements.drop.classList.remove("over"));
  }
  elements.drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) loadFile(file);
  });
  // A file dropped anywhere else would make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) loadFile(file);
  });

  // MARK: - Assembling any digit (POST /v1/assemble)

  const assembly = {
    card: $("assemble-card"), draw: $("draw"), clear: $("draw-clear"), file: $("digit-file"), targets: $("targets"),
    button: $("assemble"), verdict: $("assemble-verdict"), canvas: $("assembly"), status: $("assemble-status"),
    info: null, inked: false, photo: null, animation: 0, sequence: 0,
  };

  function drawContext() {
    const context = assembly.draw.getContext("2d");
    context.lineCap = "round";
    context.lineJoin = "round";
    context.lineWidth = 22;
    context.strokeStyle = "#fff";
    return context;
  }

  function clearDrawing() {
    const context = assembly.draw.getContext("2d");
    context.fillStyle = "#000";
    context.fillRect(0, 0, assembly.draw.width, assembly.draw.height);
    assembly.inked = false;
    assembly.photo = null;
    updateAssembleButton();
  }

  function updateAssembleButton() {
    const ready = assembly.inked || assembly.photo;
    assembly.button.disabled = !ready || document.body.dataset.assembly === "assembling";
    if (!ready) assembly.verdict.textContent = "Draw a digit first.";
    else if (!document.body.dataset.assembly || document.body.dataset.assembly === "idle") assembly.verdict.textContent = "Pick a target digit and press Assemble.";
  }

  function selectedTarget() {
    const checked = assembly.targets.querySelector("input:checked");
    return checked ? Number(checked.value) : 0;
  }

  function loadImage(source) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the service returned an image the browser cannot read"));
      image.src = source;
    });
  }

  /** Moves every piece from its cell in the source to its cell in the assembly. */
  function animateAssembly(answer, source) {
    const context = assembly.canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    const scale = assembly.canvas.width / answer.image_size, p = answer.piece_size, grid = answer.grid;
    const offset = Math.floor((answer.image_size - grid * p) / 2);
    const origin = (cell) => [offset + (cell % grid) * p, offset + Math.floor(cell / grid) * p];
    const sequence = ++assembly.sequence;
    const reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    const duration = reduced ? 0 : 1400, started = performance.now();
    return new Promise((resolve) => {
      function frame(now) {
        if (sequence !== assembly.sequence) return resolve(false);
        const t = duration ? Math.min(1, (now - started) / duration) : 1;
        const eased = t < 0.5 ? 2 * t * t : 1 - Math.pow(-2 * t + 2, 2) / 2;
        context.fillStyle = "#000";
        context.fillRect(0, 0, assembly.canvas.width, assembly.canvas.height);
        answer.cells.forEach((cell, piece) => {
          const [sx, sy] = origin(piece), [tx, ty] = origin(cell);
          const x = sx + (tx - sx) * eased, y = sy + (ty - sy) * eased;
          context.drawImage(source, sx, sy, p, p, Math.round(x * scale), Math.round(y * scale), p * scale, p * scale);
        });
        if (t < 1) {
          assembly.animation = requestAnimationFrame(frame);
        } else {
          resolve(true);
        }
      }
      cancelAnimationFrame(assembly.animation);
      assembly.animation = requestAnimationFrame(frame);
    });
  }

  function describeVerdict(verdict) {
    return verdict.digit + " (" + percent(verdict.probabilities[verdict.digit]) + ")";
  }

  async function assemble() {
    const target = selectedTarget();
    document.body.dataset.assembly = "assembling";
    assembly.status.textContent = "Assembling…";
    updateAssembleButton();
    try {
      let answer;
      if (assembly.photo) {
        answer = await request("/v1/assemble?target=" + target, {
          method: "POST", headers: { "Content-Type": assembly.photo.type || "application/octet-stream", Accept: "application/json" },
          body: assembly.photo,
        });
      } else {
        const image = assembly.draw.toDataURL("image/png");
        // Kept on the card so that the browser test can send the same drawing itself.
        assembly.card.dataset.sent = image.slice(image.indexOf(",") + 1);
        answer = await request("/v1/assemble", {
          method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ image: assembly.card.dataset.sent, target }),
        });
      }
      const source = await loadImage("data:image/png;base64," + answer.source.png);
      if (assembly.photo) {
        // Show what the network sees of the photo: the digit as MNIST would have it.
        const context = assembly.draw.getContext("2d");
        context.imageSmoothingEnabled = false;
        context.drawImage(source, 0, 0, assembly.draw.width, assembly.draw.height);
      }
      assembly.card.dataset.cells = answer.cells.join(",");
      assembly.card.dataset.assembled = answer.assembled.png;
      assembly.card.dataset.verdict = String(answer.assembled.verdict.digit);
      assembly.verdict.innerHTML = "";
      const read = document.createElement("strong");
      read.textContent = describeVerdict(answer.assembled.verdict);
      assembly.verdict.append("The classifier reads ", read,
        answer.recognised ? " — the target." : " — not the target " + target + ".",
        " It reads your digit as " + describeVerdict(answer.source.verdict) + ".");
      assembly.status.textContent = "Moving " + answer.cells.length + " pieces";
      const finished = await animateAssembly(answer, source);
      if (finished) {
        assembly.status.textContent = answer.recognised ? "Recognised" : "Not recognised";
        assembly.canvas.setAttribute("aria-label", "Your digit's pieces arranged into a " + target + "; the classifier reads " + answer.assembled.verdict.digit);
        document.body.dataset.assembly = "done";
      }
    } catch (error) {
      document.body.dataset.assembly = "failed";
      assembly.status.textContent = "Error";
      showError("Could not assemble the digit", error);
    }
    updateAssembleButton();
  }

  function setUpAssembly(info) {
    assembly.info = info;
    for (let digit = 0; digit < info.targets; digit += 1) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "target";
      input.value = String(digit);
      input.id = "target-" + digit;
      if (digit === 3) input.checked = true;
      label.append(input, document.createTextNode(String(digit)));
      assembly.targets.append(label);
    }
    const share = info.evaluation && info.evaluation["assembly.recognised"];
    assembly.status.textContent = share ? "test digits recognised: " + percent(Number(share)) : "";
    clearDrawing();
    let last = null;
    const point = (event) => {
      const box = assembly.draw.getBoundingClientRect();
      return [(event.clientX - box.left) * assembly.draw.width / box.width, (event.clientY - box.top) * assembly.draw.height / box.height];
    };
    assembly.draw.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      if (assembly.photo) clearDrawing();
      assembly.draw.setPointerCapture(event.pointerId);
      last = point(event);
      const context = drawContext();
      context.beginPath();
      context.moveTo(last[0], last[1]);
      context.lineTo(last[0] + 0.1, last[1]);
      context.stroke();
    });
    assembly.draw.addEventListener("pointermove", (event) => {
      if (!last) return;
      const next = point(event), context = drawContext();
      context.beginPath();
      context.moveTo(last[0], last[1]);
      context.lineTo(next[0], next[1]);
      context.stroke();
      last = next;
      if (!assembly.inked) {
        assembly.inked = true;
        updateAssembleButton();
      }
    });
    for (const name of ["pointerup", "pointercancel"]) {
      assembly.draw.addEventListener(name, () => {
        if (last) {
          assembly.inked = true;
          updateAssembleButton();
        }
        last = null;
      });
    }
    assembly.clear.addEventListener("click", clearDrawing);
    assembly.file.addEventListener("change", () => {
      const file = assembly.file.files[0];
      if (!file) return;
      clearDrawing();
      assembly.photo = file;
      assembly.file.value = "";
      updateAssembleButton();
      assemble();
    });
    assembly.button.addEventListener("click", assemble);
    assembly.card.hidden = false;
  }

  async function loadAssembler() {
    try {
      setUpAssembly(await request("/v1/assemble"));
    } catch (_) {
      // No assembler on this server: the section stays hidden.
    }
  }

  // For the browser test and the console: the same actions as the controls.
  window.jigsaw = { state, loadSample, loadFile, solve, requestSoft, assemble };

  requestSoft();
  loadModels();
  loadAssembler();
})();
