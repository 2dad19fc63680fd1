"""The exported SavedModel's public contract: signature names, tensor keys, metadata file.

Export writes these names, `serving.upscalers.SavedModelUpscaler` reads them, and docs/serving.md and
tools/serving_client.py document them for clients; keeping them here means a rename cannot
leave one side behind. Pure constants: importing this module does not import TensorFlow.

Signatures (N = batch, lr/hr = the model's LR and HR face sizes, see the metadata file):
  serving_default   lr_faces    uint8  [N, lr, lr, 3]  ->  sr_faces   uint8  [N, hr, hr, 3]
  encoded           image_bytes string [N] (JPEG/PNG/BMP/GIF of lr x lr)
                                                        ->  png_bytes  string [N] (PNG, hr x hr)
  all_stages        lr_faces    uint8  [N, lr, lr, 3]  ->  stage_lr, stage_x2, ... uint8
                    (only with export --all_stages; every generator output, LR first)
The `_bytes` suffixes make TF Serving's REST API accept and return these strings as
{"b64": ...} objects. N is at most the export's max_batch (metadata file; default MAX_BATCH);
N = 0 returns empty outputs.
"""

UINT8_SIGNATURE = "serving_default"
UINT8_INPUT = "lr_faces"
UINT8_OUTPUT = "sr_faces"

ENCODED_SIGNATURE = "encoded"
ENCODED_INPUT = "image_bytes"
ENCODED_OUTPUT = "png_bytes"

STAGES_SIGNATURE = "all_stages"
STAGE_OUTPUT_PREFIX = "stage_"

# Default cap on N, the faces of one request (export --max_batch; the metadata's "max_batch").
MAX_BATCH = 256

# Default for export --batch_branches (the metadata's "batch_branches"): a request of at least
# this many faces is cut into as many parts run side by side (`upscalers.stages_from_uint8`);
# two keep two CPU cores busier than one batch does (docs/benchmarks.md). Only the SavedModel
# does this: each branch is one more trace of the generator (seconds at a process's first call),
# paid once at export time there.
BATCH_BRANCHES = 2

# JSON written next to the model (TF Serving ignores assets.extra): sizes, config, provenance.
METADATA_FILE = "assets.extra/tf_stacksr.json"
