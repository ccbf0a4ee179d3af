import Foundation

/// The OpenAPI 3.0 description of every route, served at `/openapi.json`.
enum OpenAPIDocument {
    static let bytes = Array(text.utf8)

    static let text = #"""
{
  "openapi": "3.0.3",
  "info": {
    "title": "Jigsaw puzzle solver",
    "version": "1.0.0",
    "description": "Solves jigsaw puzzles with Gumbel-Sinkhorn networks (Mena et al. 2018): a convolutional network scores every scrambled piece against every grid cell, the matching M(X) gives the permutation, and the Sinkhorn operator S(X/tau) gives soft reconstructions. Convention: permutation[i] = j means scrambled piece i belongs in grid cell j (cells row-major). Every error is {\"error\": {\"code\", \"message\"}}. HTTP conventions: JSON, HTML, CSS, JavaScript, SVG and text answers of 1 KiB or more are gzip-compressed for a client that sends Accept-Encoding: gzip (q-values honoured; Vary: Accept-Encoding); static files, /openapi.json and /docs carry a strong ETag (and files Last-Modified and Cache-Control), and If-None-Match (which takes precedence) or If-Modified-Since answers 304; OPTIONS on any route or file answers 204 with Allow; CORS is off unless the server is started with --cors-origin, and then an allowed Origin gets Access-Control-Allow-Origin, Access-Control-Expose-Headers and, on a preflight, Access-Control-Allow-Methods, -Headers and -Max-Age."
  },
  "paths": {
    "/": {
      "get": {"summary": "The web page (index.html of --public), or a JSON index without one", "operationId": "index",
        "responses": {"200": {"description": "HTML page or JSON index", "content": {"text/html": {}, "application/json": {}}}}}
    },
    "/healthz": {
      "get": {"summary": "Liveness", "operationId": "health",
        "responses": {"200": {"description": "Alive", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}}}}
    },
    "/readyz": {
      "get": {"summary": "Readiness: at least one model loaded and none failed at run time", "operationId": "readiness",
        "responses": {
          "200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
          "503": {"description": "No model loaded, or a model failed (listed under failed)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}}}
    },
    "/metrics": {
      "get": {"summary": "Prometheus metrics (text format 0.0.4)", "operationId": "metrics",
        "description": "jigsaw_http_requests_total{route,method,status}, jigsaw_http_request_duration_seconds{route,method,status_class} (histogram; route is the route pattern such as /v1/puzzles/{id}/soft, static for files, none for unmatched paths), jigsaw_http_open_connections, jigsaw_http_heap_trims_total (times free heap was offered back to the system after a burst of large bodies), process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes, process_start_time_seconds, process_open_fds, process_max_fds, jigsaw_puzzles_solved_total{model}, jigsaw_lists_sorted_total{model}, store gauges and counters.",
        "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}
    },
    "/docs": {
      "get": {"summary": "This document as a readable HTML page (rendered in the browser, no external resources)", "operationId": "documentation",
        "responses": {
          "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
          "304": {"description": "Not modified (If-None-Match matched the ETag)"}}}
    },
    "/openapi.json": {
      "get": {"summary": "This document", "operationId": "openapi",
        "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    },
    "/v1/models": {
      "get": {"summary": "The loaded models with their configuration, metadata and evaluation figures", "operationId": "listModels",
        "responses": {"200": {"description": "Models", "content": {"application/json": {"schema": {
          "type": "object", "properties": {
            "default_model": {"type": "string", "nullable": true, "description": "Used when a request names no model: the jigsaw model with the smallest grid unless --default-model says otherwise"},
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}}}}}}}
    },
    "/v1/models/{name}": {
      "get": {"summary": "One model", "operationId": "describeModel",
        "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {
          "200": {"description": "The model", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Model"}}}},
          "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/solve": {
      "post": {"summary": "Solve a scrambled puzzle", "operationId": "solve",
        "description": "Body: a scrambled image, PNG (any colour type, bit depth or interlacing), JPEG (baseline or progressive, gray, YCbCr or CMYK; EXIF orientation applied; photos decoded at the 1/2, 1/4 or 1/8 DCT scale that keeps at least the display size, 512 px by default, on the long side) or still WebP, or JSON with pieces (base64 images or [H][W] / [C][H][W] arrays of numbers in [0, 1], in scrambled order) or image (a base64 image). The format is read from the magic bytes, whatever the Content-Type says; GIF, BMP, TIFF, HEIC and AVIF get 415 unsupported_image_format, animations 422. An image is centre-cropped to a multiple of the model's grid and cut into cells, with the same geometry as the trainer and the evaluator: cells of floor(width / grid) x floor(height / grid) px in the centred region, at most grid - 1 px dropped per side, the odd one from the right or bottom (a 28 px MNIST digit at 3x3 keeps the centred 27 px, cells of 9 px; at 5x5 25 px, cells of 5 px; at 6x6 24 px, cells of 4 px). The MNIST models were trained on whole MNIST digits (light strokes on black, centred in a 28 px square by their centre of mass) cut that way, so send the whole digit, not a crop of it. A model whose metadata has train.shift_pixels N (in /v1/models) saw every training digit moved at random by up to N px in each direction, with black fill, and copes far better with a digit off centre; evaluation.shift_2px.* gives each model's figures on test digits moved 2 px right and 2 px down (mnist-3x3 and mnist-4x4 solve those within 0.011 prop. wrong on equal terms of centred digits). Without it, keep the digit centred: an offset of 1-2 px is solved less well. Every piece is resized on its own to the model's piece side (area filter when shrinking, bilinear when enlarging) and converted to its channels (alpha composited on black, colour to BT.601 luma for gray models). JSON fields override the query. With no model named, a colour photo goes to the photo model of the grid found in the seams of the scrambled image (grid_detection in the answer), a piece list to the model of its piece count, and grid=N to that grid's model; an input unlike the model's training data (a colour photo given to a digit model) is solved with a note in warnings (a Warning header with Accept: image/png). A non-square image is cut into non-square pieces, each resized to the model's square piece side (the photo models are trained on crops squeezed the same way). Server-Timing gives the milliseconds of each phase (decode, detect, cut, resize, queue: waiting for a forward pass under dynamic batching, network: the forward pass of the batch the request ran in, match, confidence, store, encode). The puzzle is stored (LRU with a time to live, in memory or in the shared Redis of --store) for the /v1/puzzles routes; when the store is down the solve still answers, without links and with a note in warnings (X-Puzzle-Stored: false and a Warning header with Accept: image/png).",
        "parameters": [
          {"$ref": "#/components/parameters/Model"},
          {"name": "grid", "in": "query", "required": false, "description": "Pieces per side: choose the model of this grid (with model: must match it)", "schema": {"type": "integer", "minimum": 1, "maximum": 16}},
          {"$ref": "#/components/parameters/TauOptional"},
          {"$ref": "#/components/parameters/Iterations"},
          {"$ref": "#/components/parameters/Format"},
          {"name": "reconstruction", "in": "query", "required": false, "description": "Encoding of the JSON answer's reconstruction: auto (PNG for gray puzzles, JPEG for colour ones), png or jpeg", "schema": {"type": "string", "enum": ["auto", "png", "jpeg"], "default": "auto"}}],
        "requestBody": {"required": true, "content": {
          "image/png": {"schema": {"type": "string", "format": "binary"}},
          "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
          "image/webp": {"schema": {"type": "string", "format": "binary"}},
          "application/json": {"schema": {"$ref": "#/components/schemas/SolveRequest"}}}},
        "responses": {
          "200": {"description": "The solved puzzle; with Accept: image/png the reconstructed PNG (headers X-Puzzle-Id, X-Permutation, X-Model)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Puzzle"}}, "image/png": {"schema": {"type": "string", "format": "binary"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"},
          "415": {"$ref": "#/components/responses/Error"},
          "422": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/puzzles/{id}": {
      "get": {"summary": "A stored puzzle: scores, permutation, confidences", "operationId": "describePuzzle",
        "parameters": [{"$ref": "#/components/parameters/PuzzleId"}],
        "responses": {
          "200": {"description": "The puzzle", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Puzzle"}}}},
          "404": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/StoreUnavailable"}}}
    },
    "/v1/puzzles/{id}/soft": {
      "get": {"summary": "Soft reconstruction S(X/tau) applied to the pieces (out[j] = sum_i P[i,j] piece[i])", "operationId": "softReconstruction",
        "parameters": [
          {"$ref": "#/components/parameters/PuzzleId"},
          {"name": "tau", "in": "query", "required": false, "description": "Temperature, positive and finite (default 1)", "schema": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "default": 1}},
          {"$ref": "#/components/parameters/Iterations"},
          {"name": "format", "in": "query", "required": false, "description": "png (default) or json (the doubly-stochastic matrix)", "schema": {"type": "string", "enum": ["png", "json"]}}],
        "responses": {
          "200": {"description": "PNG image, or JSON {id, soft}", "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}, "soft": {"$ref": "#/components/schemas/SoftMatrix"}}}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "422": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/StoreUnavailable"}}}
    },
    "/v1/puzzles/{id}/scrambled.png": {
      "get": {"summary": "The scrambled image as stored", "operationId": "scrambledImage",
        "parameters": [{"$ref": "#/components/parameters/PuzzleId"}],
        "responses": {"200": {"$ref": "#/components/responses/PNG"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/StoreUnavailable"}}}
    },
    "/v1/puzzles/{id}/solution.png": {
      "get": {"summary": "The reconstruction by the hard matching", "operationId": "solutionImage",
        "parameters": [{"$ref": "#/components/parameters/PuzzleId"}],
        "responses": {"200": {"$ref": "#/components/responses/PNG"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/StoreUnavailable"}}}
    },
    "/v1/scramble": {
      "post": {"summary": "Cut an uploaded PNG, JPEG or WebP image into a grid and shuffle the cells", "operationId": "scramble",
        "description": "The image is centre-cropped to a multiple of the grid; pi = SeededGenerator(seed).permutation(grid^2) and scrambled slot s receives original cell pi[s], so pi is the answer in the solve convention. JSON by default; with Accept: image/png (or format=png) the PNG itself with headers X-Permutation (comma-separated pi), X-Grid and X-Seed.",
        "parameters": [
          {"name": "grid", "in": "query", "required": false, "description": "Pieces per side (default 3)", "schema": {"type": "integer", "minimum": 1, "maximum": 16, "default": 3}},
          {"name": "seed", "in": "query", "required": false, "description": "Seed of the shuffle; drawn by the server (and returned) when absent", "schema": {"type": "integer", "minimum": 0, "maximum": 9007199254740991}},
          {"$ref": "#/components/parameters/Format"}],
        "requestBody": {"required": true, "content": {
          "image/png": {"schema": {"type": "string", "format": "binary"}},
          "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
          "image/webp": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
          "200": {"description": "The scrambled image and its permutation", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Scramble"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"},
          "415": {"$ref": "#/components/responses/Error"},
          "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/samples": {
      "get": {"summary": "The shipped sample datasets", "operationId": "listSamples",
        "responses": {"200": {"description": "Datasets", "content": {"application/json": {"schema": {"type": "object", "properties": {
          "datasets": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "count": {"type": "integer"}, "width": {"type": "integer"}, "height": {"type": "integer"}, "channels": {"type": "integer"}}}}}}}}}}}
    },
    "/v1/samples/{k}": {
      "get": {"summary": "A demo puzzle: test image k scrambled (seed k by default), solved and stored", "operationId": "sample",
        "parameters": [
          {"name": "k", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}},
          {"$ref": "#/components/parameters/Model"},
          {"name": "dataset", "in": "query", "required": false, "description": "mnist, fashion-mnist or photos (the sample folders installed); default: the model's eval.dataset, else mnist", "schema": {"type": "string"}},
          {"name": "seed", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 9007199254740991}},
          {"$ref": "#/components/parameters/TauOptional"},
          {"$ref": "#/components/parameters/Iterations"}],
        "responses": {
          "200": {"description": "The solved sample with its scrambled image and truth", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Puzzle"}}}},
          "404": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/sort": {
      "post": {"summary": "Sort a list of numbers with a sorting-mlp model", "operationId": "sort",
        "description": "The model is the one named, else the smallest whose count holds the list. A shorter list is padded with values above its maximum that are dropped from the answer; a longer one is refused (422). permutation[i] is the sorted position of number i; sorted[j] = numbers[i] where permutation[i] = j. With tau the soft matrix S(X/tau) of the (padded) list.",
        "parameters": [{"$ref": "#/components/parameters/Model"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SortRequest"}}}},
        "responses": {
          "200": {"description": "The sorted list", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Sort"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "415": {"$ref": "#/components/responses/Error"},
          "422": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}}}
    },
    "/v1/assemble": {
      "get": {"summary": "The digit assembly network and its figures", "operationId": "describeAssembler",
        "responses": {
          "200": {"description": "The assembler", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Assembler"}}}},
          "503": {"$ref": "#/components/responses/Error"}}},
      "post": {"summary": "Assemble the pieces of any digit into a chosen digit (Mena et al. 2018, section 4.3)", "operationId": "assemble",
        "description": "A picture of one digit (PNG, JPEG or WebP body with ?target=K, or JSON with image) is first prepared the way MNIST prepares its digits: colour to gray, dark ink on light paper inverted (the tone of the picture's border is the background), the strokes' bounding box scaled to 20 px in a 28 px frame and centred by mass. It is then cut into the model's grid (10 x 10 pieces of 2 px from the centred 20 x 20 region; the 4 px border is not part of the puzzle), and the target's score head with the hard matching M(X) arranges the pieces. JSON pieces (the model's piece count, in the cell order of their source) are taken as they are. cells[i] is the cell piece i is put in; source and assembled are 28 px PNGs with the classifier's verdict on each; with tau also the soft assembly S(X/tau). With Accept: image/png the assembly itself (X-Target, X-Verdict, X-Cells). 503 no_model when the server was started without --assembly-model and --classifier (or their files in MODELS/assembly and MODELS/classifiers).",
        "parameters": [
          {"name": "target", "in": "query", "required": false, "description": "The digit to assemble (required here for an image body; JSON may give it as target)", "schema": {"type": "integer", "minimum": 0, "maximum": 9}},
          {"$ref": "#/components/parameters/TauOptional"},
          {"$ref": "#/components/parameters/Iterations"},
          {"$ref": "#/components/parameters/Format"}],
        "requestBody": {"required": true, "content": {
          "image/png": {"schema": {"type": "string", "format": "binary"}},
          "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
          "image/webp": {"schema": {"type": "string", "format": "binary"}},
          "application/json": {"schema": {"$ref": "#/components/schemas/AssembleRequest"}}}},
        "responses": {
          "200": {"description": "The arrangement, the pictures and the verdicts", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Assembly"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "413": {"$ref": "#/components/responses/Error"},
          "415": {"$ref": "#/components/responses/Error"},
          "422": {"$ref": "#/components/responses/Error"},
          "503": {"$ref": "#/components/responses/Error"}}}
    }
  },
  "components": {
    "parameters": {
      "Model": {"name": "model", "in": "query", "required": false, "description": "Model name (a file stem in Models/); the default model when absent", "schema": {"type": "string"}},
      "TauOptional": {"name": "tau", "in": "query", "required": false, "description": "Temperature of the soft matrix to return (positive, finite); confidences are read from S(X/tau) (tau = 1 when absent)", "schema": {"type": "number", "exclusiveMinimum": true, "minimum": 0}},
      "Iterations": {"name": "iterations", "in": "query", "required": false, "description": "Sinkhorn iterations (default 20, at most --max-iterations)", "schema": {"type": "integer", "minimum": 1, "default": 20}},
      "Format": {"name": "format", "in": "query", "required": false, "description": "png or json; overrides Accept", "schema": {"type": "string", "enum": ["png", "json"]}},
      "PuzzleId": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}
    },
    "responses": {
      "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "StoreUnavailable": {"description": "store_unavailable: the puzzle store (Redis, with --store redis://...) is down or did not answer within --store-timeout; retry after Retry-After seconds. Solves do not fail this way: they answer without storing (no links, a note in warnings).", "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying"}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "PNG": {"description": "A PNG image", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
    },
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "enum": ["invalid_parameter", "invalid_json", "empty_body", "invalid_image", "image_too_large", "unsupported_media_type", "unprocessable_input", "numerical_failure", "model_not_found", "wrong_model_kind", "no_model", "model_unavailable", "overloaded", "client_closed", "puzzle_not_found", "sample_not_found", "store_unavailable", "not_found", "method_not_allowed", "content_too_large", "uri_too_long", "header_fields_too_large", "malformed_request", "request_timeout", "service_unavailable", "not_implemented", "http_version_not_supported", "internal_error"]},
        "message": {"type": "string"}}}}},
      "Readiness": {"type": "object", "properties": {"status": {"type": "string"}, "models": {"type": "array", "items": {"type": "string"}, "description": "the models that serve"},
        "failed": {"type": "array", "description": "models whose network produced unusable scores; their requests get 503 model_unavailable", "items": {"type": "object", "properties": {"name": {"type": "string"}, "reason": {"type": "string"}}}},
        "store": {"type": "object", "description": "The puzzle store and whether it answers now; a down store does not make the replica unready (solves still answer, unstored)", "properties": {"name": {"type": "string", "example": "redis://cache:6379/0"}, "status": {"type": "string", "example": "available"}}}}},
      "Piece": {"oneOf": [
        {"type": "string", "description": "base64 PNG (a data: URL prefix is accepted)"},
        {"type": "array", "description": "[H][W] or [C][H][W] numbers in [0, 1]", "items": {"type": "array", "items": {}}}]},
      "AssembleRequest": {"type": "object", "properties": {
        "image": {"type": "string", "description": "a picture of one digit as base64 PNG, JPEG or WebP"},
        "pieces": {"type": "array", "items": {"$ref": "#/components/schemas/Piece"}, "description": "the model's piece count, in the cell order of their source (instead of image)"},
        "target": {"type": "integer", "minimum": 0, "maximum": 9},
        "tau": {"type": "number"},
        "iterations": {"type": "integer"}}},
      "Verdict": {"type": "object", "properties": {"digit": {"type": "integer"}, "probabilities": {"type": "array", "items": {"type": "number"}}}},
      "Assembly": {"type": "object", "properties": {
        "model": {"type": "string"}, "target": {"type": "integer"}, "grid": {"type": "integer"}, "piece_size": {"type": "integer"}, "image_size": {"type": "integer"},
        "cells": {"type": "array", "items": {"type": "integer"}, "description": "cells[i]: the cell of piece i; piece i is cell i of source"},
        "recognised": {"type": "boolean", "description": "whether the classifier calls the assembly the target"},
        "input": {"type": "string", "enum": ["digit", "pieces"], "description": "digit: a picture normalised as MNIST prepares digits; pieces: as given"},
        "source": {"type": "object", "properties": {"png": {"type": "string"}, "verdict": {"$ref": "#/components/schemas/Verdict"}}},
        "assembled": {"type": "object", "properties": {"png": {"type": "string"}, "verdict": {"$ref": "#/components/schemas/Verdict"}}},
        "soft": {"type": "object", "properties": {"tau": {"type": "number"}, "iterations": {"type": "integer"}, "png": {"type": "string"}, "verdict": {"$ref": "#/components/schemas/Verdict"}}}}},
      "Assembler": {"type": "object", "properties": {
        "model": {"type": "string"}, "grid": {"type": "integer"}, "piece_size": {"type": "integer"}, "image_size": {"type": "integer"}, "targets": {"type": "integer"},
        "evaluation": {"type": "object", "description": "assembly.* figures of the weights file: assembly.recognised is the share of (test digit, target) pairs the classifier calls the target", "additionalProperties": {"type": "string"}},
        "classifier_test_accuracy": {"type": "string"}}},
      "SolveRequest": {"type": "object", "properties": {
        "pieces": {"type": "array", "items": {"$ref": "#/components/schemas/Piece"}, "description": "grid^2 pieces in scrambled order"},
        "image": {"type": "string", "description": "a whole scrambled image as base64 PNG (instead of pieces)"},
        "model": {"type": "string"},
        "tau": {"type": "number"},
        "iterations": {"type": "integer"}}},
      "SoftMatrix": {"type": "object", "properties": {
        "tau": {"type": "number"}, "iterations": {"type": "integer"},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "row_marginal_error": {"type": "number"}}},
      "Links": {"type": "object", "properties": {"self": {"type": "string"}, "scrambled": {"type": "string"}, "solution": {"type": "string"}, "soft": {"type": "string"}}},
      "Puzzle": {"type": "object", "required": ["id", "model", "grid", "permutation", "confidence"], "properties": {
        "id": {"type": "string"}, "model": {"type": "string"}, "grid": {"type": "integer"},
        "permutation": {"type": "array", "items": {"type": "integer"}, "description": "permutation[i] = cell of scrambled piece i"},
        "confidence": {"type": "array", "items": {"type": "number"}, "description": "S(X/tau)[i, permutation[i]]"},
        "reconstruction": {"type": "string", "description": "base64 image: PNG for gray puzzles, JPEG (quality 90) for colour ones; ?reconstruction=png|jpeg|auto overrides"},
        "reconstruction_type": {"type": "string", "description": "media type of reconstruction: image/png or image/jpeg"},
        "scrambled": {"type": "string", "description": "base64 PNG (samples)"},
        "scores": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "soft": {"$ref": "#/components/schemas/SoftMatrix"},
        "grid_detection": {"type": "object", "description": "The grid found in the scrambled image when the request named neither a model nor a grid", "properties": {
          "grid": {"type": "integer"}, "confidence": {"type": "number", "description": "1 - 1/score, in [0, 1]"},
          "scores": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Seam score of every candidate grid"}}},
        "warnings": {"type": "array", "items": {"type": "string"}, "description": "Notes on the input or the choice of model"},
        "truth": {"type": "array", "items": {"type": "integer"}},
        "correct_pieces": {"type": "integer"},
        "sample": {"type": "object", "properties": {"dataset": {"type": "string"}, "index": {"type": "integer"}, "label": {"type": "integer"}, "seed": {"type": "integer"}}},
        "origin": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
        "links": {"allOf": [{"$ref": "#/components/schemas/Links"}], "description": "Absent when the puzzle could not be stored (store down or entry too large; warnings says why)"}}},
      "Scramble": {"type": "object", "properties": {
        "grid": {"type": "integer"}, "seed": {"type": "integer"}, "width": {"type": "integer"}, "height": {"type": "integer"},
        "permutation": {"type": "array", "items": {"type": "integer"}}, "image": {"type": "string", "description": "base64 PNG"}}},
      "SortRequest": {"type": "object", "required": ["numbers"], "properties": {
        "numbers": {"type": "array", "items": {"type": "number"}}, "model": {"type": "string"}, "tau": {"type": "number"}, "iterations": {"type": "integer"}}},
      "Sort": {"type": "object", "properties": {
        "model": {"type": "string"}, "count": {"type": "integer"}, "padded": {"type": "integer"},
        "permutation": {"type": "array", "items": {"type": "integer"}}, "sorted": {"type": "array", "items": {"type": "number"}},
        "soft": {"$ref": "#/components/schemas/SoftMatrix"}}},
      "Model": {"type": "object", "properties": {
        "name": {"type": "string"}, "kind": {"type": "string", "enum": ["jigsaw", "sorting"]}, "architecture": {"type": "string"},
        "source": {"type": "string"}, "is_default": {"type": "boolean"}, "inferred": {"type": "boolean", "description": "configuration inferred from tensor shapes (no __metadata__)"},
        "notes": {"type": "array", "items": {"type": "string"}}, "parameters": {"type": "integer"},
        "configuration": {"type": "object", "additionalProperties": true},
        "evaluation": {"type": "object", "additionalProperties": true, "description": "eval.* metadata: dataset, split, puzzles, kendall_tau, prop_wrong, prop_any_wrong, l1, l2, and equal_terms_kendall_tau, equal_terms_prop_wrong, equal_terms_prop_any_wrong (a piece counts as right when its pixels equal those of the piece that belongs in its cell); bound_prop_wrong, bound_prop_any_wrong (the best any solver can reach under exact-match scoring, identical pieces ordered at random); shift_Npx.* (the same figures on test digits moved N px right and N px down, black fill)"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "ready": {"type": "boolean", "description": "false once the model failed at run time"}, "failure": {"type": "string", "description": "why it failed"},
        "checksum_verified": {"type": "boolean", "description": "the tensor data matched the metadata's checksum.sha256"}}}
    }
  }
}
"""#
}
