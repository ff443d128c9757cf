"""Fine-tuning YOLACT / YOLACT++ on COCO-format data: targets, losses, data and the trainer."""
