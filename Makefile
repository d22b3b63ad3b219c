# Rebuild the shipped models from scratch: `make models` (hours on a laptop CPU; minutes on a GPU).
# Each target trains into runs/ and exports the best weights in half precision into models/.
# The exact commands used for the files in models/ are recorded in their config.json ("command").

SHAKESPEARE_ARGS = --model lstm --layers 2 --hidden 512 --embed 64 --dropout 0.25 --batch-size 32 --seq-len 128 \
                   --lr 3e-3 --warmup 200 --min-lr-frac 0.05 --eval-every 500 --time-budget 110m --threads 1

FOLK_ARGS = --model lstm --layers 2 --hidden 512 --embed 64 --dropout 0.3 --batch-size 32 --seq-len 128 \
            --lr 3e-3 --warmup 200 --min-lr-frac 0.05 --eval-every 250 --time-budget 60m --threads 1

# The pronunciation (G2P) model: the cmudict corpus's fixed train/val/test files, phonemes as space-separated tokens.
G2P_ARGS = --model lstm --layers 2 --hidden 320 --embed 96 --dropout 0.2 --attention general \
           --batch-size 64 --lr 2e-3 --warmup 200 --eval-every 1000 --eval-sample 1000 --time-budget 110m --threads 1

# The code model: this interpreter's standard library (`charrnn corpora build pystdlib`, 12 MB), the last 2% held out.
# What `--time-budget 45m` chose (--size auto) on a quiet 2-core machine, written out: the same shape anywhere.
PYSTDLIB_ARGS = --model lstm --layers 2 --hidden 512 --embed 64 --dropout 0 --batch-size 16 --seq-len 128 \
                --lr 3e-3 --warmup 100 --min-lr-frac 0.1 --eval-every 1000 --val-frac 0.02 --time-budget 45m

.PHONY: models shakespeare-model folk-model g2p-model pystdlib-model test

models: shakespeare-model folk-model g2p-model pystdlib-model

shakespeare-model:
	charrnn train shakespeare --out runs/shakespeare-2x512 $(SHAKESPEARE_ARGS)
	charrnn export --force runs/shakespeare-2x512 models/shakespeare

folk-model:
	charrnn corpora build folk
	charrnn train folk --out runs/folk-2x512 $(FOLK_ARGS)
	charrnn export --force runs/folk-2x512 models/folk
	cp corpora/folk.forms.json models/folk/corpus.forms.json  # the layouts and note index of the model's own corpus
	cp corpora/folk.notes.gz models/folk/corpus.notes.gz
	cp corpora/folk.LICENSE models/folk/LICENSE  # music21's notice and the transcribers' credits travel with them

g2p-model:
	charrnn corpora build cmudict
	charrnn seq2seq train cmudict --out runs/g2p $(G2P_ARGS)
	charrnn export --force runs/g2p models/g2p
	cp corpora/cmudict.LICENSE models/g2p/LICENSE  # CMU's notice travels with what is built from the dictionary

pystdlib-model:
	charrnn corpora build pystdlib
	charrnn train pystdlib --out runs/pystdlib $(PYSTDLIB_ARGS)
	charrnn export --force runs/pystdlib models/pystdlib
	cp corpora/pystdlib.LICENSE models/pystdlib/LICENSE  # the PSF licence travels with what is built from the code

test:
	python -m pytest
