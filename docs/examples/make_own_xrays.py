# Copyright (c) mmchh contributors. Licensed under the Apache License 2.0.
"""Write the example folder of docs/own_data.md: DICOM and MetaImage X-rays
with several header spacings, landmark names and a CSV of two annotators.

Usage: python docs/examples/make_own_xrays.py OUT [--num-images N]
    [--num-new N] [--seed S]

With your own X-rays you skip this: you already have the images, the names
and the annotations. What it writes under OUT:

- ``xrays/NNN.dcm`` and ``xrays/NNN.mha``: synthetic lateral cephalograms
  (:mod:`mmchh.datasets.synthetic`) from three "scanners" in turn, of
  pixel spacing 0.75, 0.9 and 1.0 mm (x and y), written in each file's
  header: DICOM ``PixelSpacing`` (row, column), MetaImage
  ``ElementSpacing``, or DICOM ``ImagerPixelSpacing`` only (as many
  projection radiographs give it). The anatomy is life-size in every image
  (within 0.3 %), so a coarser scanner gives a smaller image (258 x 320,
  215 x 267, 194 x 240 pixels). DICOMs are 16-bit with 12 bits stored,
  MetaImages 8-bit.
- ``names.txt``: the landmark names, one per line.
- ``landmarks.csv``: ``image,keypoint,x,y,annotator``, the clicks of two
  synthetic clinicians ``dr_a`` and ``dr_b`` (they disagree by about 2 mm,
  like real ones), x to the right and y down in stored pixels.
- ``new_xrays/``: further X-rays of the same three kinds, not annotated,
  for inference.
- ``new_xrays_dr_a.csv``: dr_a's own reading of the new X-rays, used only
  by ``docs/examples/simulate_review.py`` to stand in for the clinician who
  reviews the predictions.

Every image draws from its own generator seeded with (seed, number), so the
same arguments always give the same pixels and points.
"""
import argparse
import csv
import os
import os.path as osp
import sys

# run from a checkout without installing the package
sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

#: The landmarks of the example (a subset of the synthetic cephalogram's).
LANDMARKS = ('sella', 'nasion', 'menton', 'gonion')
#: (name, spacing mm, image W x H, how the file states its spacing): the
#: synthetic anatomy is life-size at 0.1 mm/px in a 1935 x 2400 image.
SCANNERS = (
    ('A', 0.75, (258, 320), 'dicom:PixelSpacing'),
    ('B', 0.9, (215, 267), 'metaimage:ElementSpacing'),
    ('C', 1.0, (194, 240), 'dicom:ImagerPixelSpacing'),
)
ANNOTATORS = (('senior', 'dr_a'), ('junior', 'dr_b'))


def write_dicom(path, pixels, spacing, key):
    """An uncompressed 16-bit DICOM (12 bits stored) with ``key``
    (``PixelSpacing`` or ``ImagerPixelSpacing``) = (row, column) spacing."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'  # DX
    meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=[osp.basename(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = 'DX'
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    setattr(ds, key, [f'{spacing:g}', f'{spacing:g}'])
    ds.PixelData = pixels.astype('<u2').tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_metaimage(path, pixels, spacing):
    """A 2-D MetaImage with ``ElementSpacing`` = (x, y)."""
    import SimpleITK as sitk
    image = sitk.GetImageFromArray(pixels)
    image.SetSpacing((spacing, spacing))
    sitk.WriteImage(image, path)


def write_image(folder, number, scanner, seed):
    """Writes image ``number`` as ``scanner`` would; returns (file name,
    {annotator: (K, 2) points})."""
    import numpy as np

    from mmchh.datasets.ceph_meta import CEPH_LANDMARK_NAMES
    from mmchh.datasets.synthetic import synthetic_ceph_sample
    _, spacing, size, kind = scanner
    sample = synthetic_ceph_sample(np.random.default_rng([seed, number]), size)
    rows = [CEPH_LANDMARK_NAMES.index(name) for name in LANDMARKS]
    fmt, key = kind.split(':')
    name = f'{number:03d}' + ('.dcm' if fmt == 'dicom' else '.mha')
    if fmt == 'dicom':
        # 8-bit rendering spread over 12 bits, as a detector stores it
        write_dicom(osp.join(folder, name),
                    sample['image'].astype(np.uint16) * 16, spacing, key)
    else:
        write_metaimage(osp.join(folder, name), sample['image'], spacing)
    return name, {
        who: sample['annotations'][synthetic][rows]
        for synthetic, who in ANNOTATORS
    }


def write_csv(path, rows, header):
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', help='the folder to write (created)')
    parser.add_argument('--num-images',
                        type=int,
                        default=48,
                        help='annotated X-rays in xrays/ (default 48)')
    parser.add_argument('--num-new',
                        type=int,
                        default=3,
                        help='X-rays in new_xrays/ (default 3)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    xrays = osp.join(args.out, 'xrays')
    new_xrays = osp.join(args.out, 'new_xrays')
    for folder in (xrays, new_xrays):
        os.makedirs(folder, exist_ok=True)

    rows, counts = [], {}
    for i in range(args.num_images):
        scanner = SCANNERS[i % len(SCANNERS)]
        name, clicks = write_image(xrays, i + 1, scanner, args.seed)
        counts[scanner[0]] = counts.get(scanner[0], 0) + 1
        for _, who in ANNOTATORS:
            rows += [[name, lm, int(x), int(y), who]
                     for lm, (x, y) in zip(LANDMARKS, clicks[who])]
    write_csv(osp.join(args.out, 'landmarks.csv'), rows,
              ['image', 'keypoint', 'x', 'y', 'annotator'])
    with open(osp.join(args.out, 'names.txt'), 'w') as f:
        f.write('# the landmarks, in output order\n')
        f.write(''.join(name + '\n' for name in LANDMARKS))

    reading = []
    for i in range(args.num_new):
        # numbered after the annotated ones: other heads
        name, clicks = write_image(new_xrays, 901 + i,
                                   SCANNERS[i % len(SCANNERS)], args.seed)
        reading += [[name, lm, int(x), int(y)]
                    for lm, (x, y) in zip(LANDMARKS, clicks['dr_a'])]
    write_csv(osp.join(args.out, 'new_xrays_dr_a.csv'), reading,
              ['image', 'keypoint', 'x', 'y'])

    per_scanner = ', '.join(f'{counts.get(s[0], 0)} at {s[1]} mm ({s[3]})'
                            for s in SCANNERS)
    print(f'make_own_xrays: {args.num_images} annotated X-rays in {xrays} '
          f'({per_scanner}); {len(LANDMARKS)} landmarks, annotators '
          f'{", ".join(w for _, w in ANNOTATORS)}; {args.num_new} new X-rays '
          f'in {new_xrays}')


if __name__ == '__main__':
    main()
