"""Detection datasets in the formats people bring, read into one model and written as darknet labels.

Formats (`FORMATS`): ``yolo`` (darknet txt beside the images; Roboflow's "darknet" export and theAIGuys' ``obj/`` +
``test/`` are this format in split folders), ``ultralytics`` (``data.yaml`` with ``images/`` + ``labels/`` per
split, Roboflow's YOLOv5/v8 export), ``voc`` (Pascal VOC / labelImg ``.xml``, beside the images or in
``Annotations/`` + ``JPEGImages/``), ``coco`` (one json with ``images``/``annotations``/``categories`` for a folder),
``labelme`` (one ``.json`` with ``shapes`` per image), ``cvat`` (CVAT "for images 1.1" ``annotations.xml``) and
``openimages`` (Open Images ``*-annotations-bbox.csv`` with ``class-descriptions*.csv``).

The model: every image with its real size (read from the file's header, never from what an annotation claims),
its boxes as pixel corners ``x0 y0 x1 y1`` in continuous 0-based coordinates (a box covering pixel columns 0..9
has x0=0, x1=10), class ids into one ordered list of names, and the split the source put it in (None when it has
none). Pixel conventions of the sources:

- VOC: 1-based corners (pixel indexes). We follow darknet's own scripts/voc_label.py: x0 = xmin - 1,
  x1 = xmax - 1 (so width = xmax - xmin).
- COCO: ``bbox = [x, y, w, h]`` in 0-based continuous pixels.
- CVAT: ``xtl ytl xbr ybr`` continuous pixels. LabelMe: rectangle/polygon points in continuous pixels.
- YOLO/Ultralytics: relative centre and size. Open Images: relative corners.

Class order (printed by `%yolo data`): the source's own order where it has one (names file, data.yaml, COCO's
category ids ascending, CVAT's label list, Open Images' descriptions file order restricted to the classes used),
else names sorted alphabetically (VOC, LabelMe). ``names=`` overrides and then fixes the order.

Pure readers apart from reading the files; nothing here writes into the source folder. `write_darknet` writes
labels beside one link per image in an output folder (see its docstring for why every darknet flavor finds them).

One module a job, one reader a format: `model` (the dataset model), `images` (which files are images, their sizes),
`detect` (which format a folder is in), `reader` (what every reader shares), `yolo`, `voc`, `coco`, `labelme`,
`cvat`, `openimages` (one per format), `read` (`read_dataset`), `write` (darknet's labels and lists), `summary`
(the dataset as a table). Adding a format means adding one reader module and its line in `read._READERS`.
"""
from .detect import detect_format, folder_format
from .images import image_size
from .model import FORMATS, IMAGE_EXTENSIONS, SPLIT_FOLDERS, Box, Dataset, ImageRecord
from .read import read_dataset
from .summary import boxes_frame, summary_frame
from .write import ConvertResult, label_path, label_paths, write_darknet
from .yolo import read_names_file

__all__ = ["FORMATS", "IMAGE_EXTENSIONS", "SPLIT_FOLDERS", "Box", "Dataset", "ImageRecord", "ConvertResult",
           "image_size", "detect_format", "folder_format", "read_dataset", "write_darknet", "label_path", "label_paths",
           "boxes_frame", "summary_frame", "read_names_file"]
